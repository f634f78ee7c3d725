"""Every example of the API reference is one of our doctests, word for word.

docs/api-reference.txt is the reference as published (flattened: each
``>>>`` starts a new statement on the same line). The doctests themselves
run through pytest's --doctest-modules; this test shows that they cover the
reference, so each reference example is executed and its output checked.
"""

import doctest
import re

import pytest

import modelqueue
from modelqueue import queue, status
from modelqueue.admin import actions, filters
from tests.support import ROOT

REFERENCE = ROOT / 'docs' / 'api-reference.txt'


def flatten(text):
    return re.sub(r'\s+', ' ', text).strip()


def reference_examples():
    return [
        flatten(line[line.index('>>>') :])
        for line in REFERENCE.read_text().splitlines()
        if '>>>' in line
    ]


def our_examples():
    finder = doctest.DocTestFinder()
    flattened = []
    for module in (modelqueue, status, queue, actions, filters):
        for test in finder.find(module):
            flattened.append(
                flatten(
                    ' '.join(
                        f'>>> {example.source} {example.want}' for example in test.examples
                    )
                )
            )
    return flattened


def test_reference_has_examples():
    assert len(reference_examples()) == 10


@pytest.mark.parametrize('example', reference_examples())
def test_reference_example_is_a_doctest(example):
    assert any(example in ours for ours in our_examples()), example


def test_every_reference_name_is_public():
    names = set(re.findall(r'modelqueue\.(\w+)', REFERENCE.read_text()))
    names -= {'fields'}  # "alias of django.db.models.fields.BigIntegerField"
    assert names <= set(modelqueue.__all__), names - set(modelqueue.__all__)
    assert modelqueue.StatusField.__name__ == 'BigIntegerField'
