"""The throughput run's targets (the issue's) and its printed table.

Not run by itself: ``python -m bench throughput`` prints `report(results)`
and stores `targets(results)` in its results file.
"""

LABELS = {
    'modelqueue': 'modelqueue (this)',
    'modelqueue-2.2.1': 'modelqueue 2.2.1',
    'django-tasks-db': 'django-tasks-db',
    'modelqueue-tasks': 'modelqueue --tasks',
}


def find(items, **match):
    for row in items:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(results):
    """The issue's targets, each with the figures it was judged on.

    A target that compares with a peer is not judged (``met`` is None) when
    that peer was not run: it cannot be met against nothing.
    """
    checks = []
    tp, limits = results['throughput'], results['dblimit']

    def add(name, ok, detail):
        checks.append({'target': name, 'met': ok, 'detail': detail})

    ours = find(tp, database='postgresql', impl='modelqueue', workers=1, delay_ms=0.0)
    old = find(tp, database='postgresql', impl='modelqueue-2.2.1', workers=1, delay_ms=0.0)
    limit1 = find(limits, database='postgresql', connections=1)
    if ours and old:
        ratio = ours['tasks_per_second'] / old['tasks_per_second']
        add('PostgreSQL W=1 0 ms: >= 1.5x modelqueue 2.2.1', ratio >= 1.5, f'{ratio:.2f}x')
    if ours and limit1:
        share = ours['tasks_per_second'] / (limit1['commits_per_second'] / 2)
        add(
            'PostgreSQL W=1 0 ms: >= 30% of the single-connection limit for two commits per task',
            share >= 0.3,
            f'{100 * share:.0f}% of {limit1["commits_per_second"] / 2:.0f} tasks/s',
        )
    ours = find(tp, database='postgresql', impl='modelqueue', workers=8, delay_ms=5.0)
    limit8 = find(limits, database='postgresql', connections=8)
    if ours:
        ideal, basis = 8 * 1000 / 5.0, '8 workers x 1000 ms / 5 ms'
        if limit8 and limit8['commits_per_second'] / 2 < ideal:
            ideal = limit8['commits_per_second'] / 2
            basis = 'the 8-connection database limit at two commits per task'
        share = ours['tasks_per_second'] / ideal
        peers = [
            find(tp, database='postgresql', impl=impl, workers=8, delay_ms=5.0)
            for impl in ('modelqueue-2.2.1', 'django-tasks-db')
        ]
        clean = not (ours['duplicates'] or ours['never_finished'])
        detail = (
            f'{100 * share:.0f}% of the ideal {ideal:.0f} tasks/s ({basis});'
            f' duplicates {ours["duplicates"]}, lost {ours["never_finished"]}'
        )
        if None in peers:
            add('PostgreSQL W=8 5 ms: >= 70% of ideal, no duplicates or losses, ahead of both peers',
                None, detail + '; a peer was not run')
        else:
            ahead = all(ours['tasks_per_second'] > p['tasks_per_second'] for p in peers)
            add(
                'PostgreSQL W=8 5 ms: >= 70% of ideal, no duplicates or losses, ahead of both peers',
                share >= 0.7 and clean and ahead,
                f'{detail}; ahead of peers: {ahead}',
            )
    for delay in (0.0, 5.0):
        ours = find(tp, database='sqlite', impl='modelqueue', workers=4, delay_ms=delay)
        old = find(tp, database='sqlite', impl='modelqueue-2.2.1', workers=4, delay_ms=delay)
        if ours:
            clean = not (ours['errors'] or ours['never_finished'] or ours['duplicates'])
            detail = f'errors {ours["errors"]}, lost {ours["never_finished"]}'
            if old is None:
                add(f'SQLite W=4 {delay:g} ms: no errors, no losses, ahead of 2.2.1',
                    None, f'{detail}; 2.2.1 was not run')
            else:
                add(
                    f'SQLite W=4 {delay:g} ms: no errors, no losses, ahead of 2.2.1',
                    clean and ours['tasks_per_second'] > old['tasks_per_second'],
                    f'{detail}, {ours["tasks_per_second"]:.0f} vs'
                    f' {old["tasks_per_second"]:.0f} tasks/s',
                )
    for database in dict.fromkeys(r['database'] for r in results['table']):
        sizes = sorted(
            r['rows'] for r in results['table'] if r['database'] == database and r['impl'] == 'modelqueue'
        )
        if len(sizes) >= 2:
            small = find(results['table'], database=database, impl='modelqueue', rows=sizes[0])
            big = find(results['table'], database=database, impl='modelqueue', rows=sizes[-1])
            ratio = big['claim_p50_ms'] / small['claim_p50_ms']
            add(
                f'{database}: claim p50 at {sizes[-1]:,} rows within 2x of {sizes[0]:,}',
                ratio <= 2,
                f'{big["claim_p50_ms"]:.2f} vs {small["claim_p50_ms"]:.2f} ms ({ratio:.2f}x)',
            )
    modes = results.get('worker_modes', [])
    threads = find(modes, database='postgresql', mode='--threads 8')
    processes = find(modes, database='postgresql', mode='--concurrency 8')
    if threads and processes:
        speed = threads['tasks_per_second'] / processes['tasks_per_second']
        memory = threads['peak_rss_mb'] / processes['peak_rss_mb']
        add(
            'PostgreSQL 8 x 5 ms: --threads 8 at least as fast as --concurrency 8, with <= 30% of its summed RSS',
            speed >= 1 and memory <= 0.3,
            f'{threads["tasks_per_second"]:.0f} vs {processes["tasks_per_second"]:.0f} tasks/s ({speed:.2f}x);'
            f' {threads["peak_rss_mb"]:.0f} vs {processes["peak_rss_mb"]:.0f} MB RSS ({100 * memory:.0f}%)',
        )
    threads = find(modes, database='postgresql', mode='--threads 32')
    if threads:
        share = threads['tasks_per_second'] / 640
        add(
            'PostgreSQL 32 x 50 ms: --threads 32 >= 90% of the ideal 640 tasks/s',
            share >= 0.9,
            f'{threads["tasks_per_second"]:.0f} tasks/s, {100 * share:.0f}%',
        )
    woken = find(results.get('wakeups', []), database='postgresql')
    if woken:
        add(
            f'PostgreSQL {woken["rows"]:,} rows in one commit, {woken["threads"]} idle threads:'
            ' one NOTIFY wakes one thread',
            woken['woken_by_notification'] == 1,
            f'{woken["woken_by_notification"]} woken by the notification, {woken["woken_by_another_thread"]}'
            f' by a thread that found a row, {woken["woken_by_polling"]} by polling; {woken["found_nothing"]}'
            f' found nothing; drained in {woken["drain_seconds"]:.2f} s',
        )
    pickup = find(results['pickup'], database='postgresql', impl='modelqueue')
    if pickup and pickup['p50_ms'] is not None:
        add(
            'PostgreSQL pickup: p50 <= 20 ms, p95 <= 50 ms (idle worker polling once a second)',
            pickup['p50_ms'] <= 20 and pickup['p95_ms'] <= 50,
            f'p50 {pickup["p50_ms"]:.0f} ms, p95 {pickup["p95_ms"]:.0f} ms ({pickup["mechanism"]})',
        )
    return checks


def report(results):
    lines = []
    m = results['machine']
    lines.append(
        f'Machine: {m["cores"]} cores, {m["cpu"]}; load average {m["load_average_at_start"][0]:.1f}'
        f' at start, {m["load_average_at_end"][0]:.1f} at end'
        + (
            f', {min(m["load_samples"]):.1f} to {max(m["load_samples"]):.1f} during throughput'
            if m.get('load_samples') else ''
        )
    )
    impls = list(results['implementations'])
    for impl, per_db in results['implementations'].items():
        info = next(iter(per_db.values()))
        lines.append(
            f'  {LABELS[impl]}: {info["version"]} (Python {info["python"]}, Django {info["django"]})'
        )
    databases = []
    for per_db in results['implementations'].values():
        for database in per_db:
            if database not in databases:
                databases.append(database)
    width = 20
    for database in databases:
        info = results['implementations'][impls[0]][database]
        lines.append('')
        lines.append(f'== {info["database"]} ==')
        for limit in results['dblimit']:
            if limit['database'] == database:
                lines.append(
                    f'Database limit, {limit["connections"]} connection(s): '
                    f'{limit["commits_per_second"]:,.0f} single-row UPDATE commits/s'
                    f' (= {limit["commits_per_second"] / 2:,.0f} tasks/s at two commits per task)'
                )
        rows = [r for r in results['throughput'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append(
                f'Throughput, tasks/s (median of {rows[0]["runs"]} runs of {rows[0]["tasks"]} tasks);'
                ' [duplicate executions / never finished / errors / empty claims while due]'
            )
            lines.append('W  action | ' + ' | '.join(LABELS[i].ljust(width) for i in impls))
            for workers, delay in dict.fromkeys((r['workers'], r['delay_ms']) for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, workers=workers, delay_ms=delay)
                    cells.append(
                        f'{r["tasks_per_second"]:6.0f} [{r["duplicates"]}/{r["never_finished"]}'
                        f'/{r["errors"]}/{r["empty_while_due"]}]'.ljust(width)
                        if r else '-'.ljust(width)
                    )
                lines.append(f'{workers:<2} {delay:4g} ms | ' + ' | '.join(cells))
        rows = [r for r in results['table'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append('Claim latency p50 / p99 ms (most rows finished), and state counts (tally) ms')
            lines.append('rows      | ' + ' | '.join(LABELS[i].ljust(width) for i in impls))
            for size in dict.fromkeys(r['rows'] for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, rows=size)
                    cells.append(
                        f'{r["claim_p50_ms"]:.2f} / {r["claim_p99_ms"]:.2f}'.ljust(width) if r else '-'.ljust(width)
                    )
                lines.append(f'{size:<9,} | ' + ' | '.join(cells))
            for size in dict.fromkeys(r['rows'] for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, rows=size)
                    value = r and r.get('tally_ms')
                    text = f'{value:.1f}' if value is not None else '-'
                    if r and r.get('dashboard_ms') is not None:
                        text += f' (dashboard {r["dashboard_ms"]:.1f})'
                    cells.append(text.ljust(width))
                lines.append(f'tally {size:<9,} | ' + ' | '.join(cells))
        rows = [r for r in results['cost'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append(
                'Cost per task, one worker: SQL statements sent / transactions'
                ' (PostgreSQL counts) / CPU ms of the worker'
            )
            cells = []
            for impl in impls:
                r = find(rows, impl=impl)
                commits = '-' if not r or r['commits_per_task'] is None else f'{r["commits_per_task"]:.1f}'
                cells.append(
                    f'{r["statements_per_task"]:.1f} / {commits} / {r["cpu_ms_per_task"]:.2f}'.ljust(width)
                    if r else '-'.ljust(width)
                )
            lines.append('          | ' + ' | '.join(cells))
        rows = [r for r in results['pickup'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append('Pickup latency p50 / p95 ms, one idle worker, commit to action start')
            cells = []
            for impl in impls:
                r = find(rows, impl=impl)
                cells.append(
                    f'{r["p50_ms"]:.0f} / {r["p95_ms"]:.0f} (n={r["samples"]})'.ljust(width)
                    if r and r['p50_ms'] is not None else '-'.ljust(width)
                )
            lines.append('          | ' + ' | '.join(cells))
            ours = find(rows, impl='modelqueue') or find(rows, impl='modelqueue-tasks')
            if ours:
                lines.append(f'  modelqueue waits with: {ours["mechanism"]}')
    modes = results.get('worker_modes', [])
    for database in dict.fromkeys(r['database'] for r in modes):
        lines.append('')
        lines.append(
            f'modelqueue_worker on {database}, started idle, then the rows committed at once'
            f' (median of {modes[0]["runs"]} runs): tasks/s, peak summed RSS / PSS of its processes'
        )
        for row in modes:
            if row['database'] == database:
                lines.append(
                    f'  {row["mode"]:<16} {row["delay_ms"]:4g} ms x {row["tasks"]:<5} {row["tasks_per_second"]:6.0f}'
                    f' tasks/s  {row["peak_rss_mb"]:5.0f} / {row["peak_pss_mb"]:4.0f} MB'
                    f' in {row["processes"]} process{"es" if row["processes"] > 1 else ""}'
                    f' [{row["duplicates"]}/{row["never_finished"]}]'
                )
    for row in results.get('wakeups', []):
        lines.append(
            f'{row["rows"]:,} rows committed at once, {row["threads"]} idle threads on {row["database"]}:'
            f' woken {row["woken_by_notification"]} by the NOTIFY, {row["woken_by_another_thread"]} by another'
            f' thread, {row["woken_by_polling"]} by polling; {row["found_nothing"]} found nothing;'
            f' drained in {row["drain_seconds"]:.2f} s'
        )
    if results['targets']:
        lines.append('')
        lines.append('Targets')
        for check in results['targets']:
            mark = {True: 'MET    ', False: 'MISSED ', None: 'NOT JUDGED '}[check['met']]
            lines.append(f'  {mark}{check["target"]}: {check["detail"]}')
    return '\n'.join(lines)

