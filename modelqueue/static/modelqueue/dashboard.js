/* ModelQueue dashboard: draws the queue figures with Chart.js and refreshes
 * them from the JSON endpoint every few seconds, without reloading the page.
 * Configuration and the first figures come from the json_script element
 * #modelqueue-dashboard-config. */
'use strict';
(function () {
    const STATES = ['created', 'waiting', 'working', 'finished', 'canceled'];
    const COLORS = {
        created: '#6c757d', waiting: '#1f6fbf', working: '#b07400',
        finished: '#23824a', canceled: '#b52b27', failed: '#7b2cbf'
    };
    const config = JSON.parse(
        document.getElementById('modelqueue-dashboard-config').textContent
    );
    const root = document.querySelector('.modelqueue-dashboard-main');
    const statusLine = document.querySelector('[data-refresh-status]');
    const charts = {};
    let refreshes = 0;

    function quietColor() {
        const value = getComputedStyle(document.body).getPropertyValue('--body-quiet-color');
        return value.trim() || '#666';
    }

    function formatAge(seconds) {
        if (seconds === null || seconds === undefined) {
            return '–';
        }
        if (seconds < 120) {
            return seconds + ' s';
        }
        if (seconds < 7200) {
            return Math.floor(seconds / 60) + ' min';
        }
        if (seconds < 172800) {
            return Math.floor(seconds / 3600) + ' h';
        }
        return Math.floor(seconds / 86400) + ' d';
    }

    function minuteLabel(iso) {
        return iso.slice(11, 16);  // HH:MM of an ISO 8601 UTC timestamp
    }

    function sectionOf(field) {
        return Array.from(document.querySelectorAll('.modelqueue-queue'))
            .find((section) => section.dataset.field === field);
    }

    function createCharts(queue) {
        const section = sectionOf(queue.field);
        Chart.defaults.color = quietColor();
        const tally = new Chart(section.querySelector('canvas[data-chart="tally"]'), {
            type: 'bar',
            data: {
                labels: STATES.map((name) => config.stateLabels[name]),
                datasets: [{
                    label: config.texts.rows,
                    data: STATES.map((name) => queue.tally[name]),
                    backgroundColor: STATES.map((name) => COLORS[name])
                }]
            },
            options: {
                maintainAspectRatio: false,
                animation: false,
                plugins: {legend: {display: false}},
                scales: {y: {beginAtZero: true, ticks: {precision: 0}}},
                onHover: (event, elements) => {
                    event.native.target.style.cursor = elements.length ? 'pointer' : 'default';
                },
                onClick: (event, elements) => {
                    if (elements.length) {
                        const name = STATES[elements[0].index];
                        window.location.assign(charts[queue.field].filterUrls[name]);
                    }
                }
            }
        });
        const throughput = new Chart(section.querySelector('canvas[data-chart="throughput"]'), {
            type: 'bar',
            data: {
                labels: queue.throughput.minutes.map(minuteLabel),
                datasets: [
                    {
                        label: config.texts.finished,
                        data: queue.throughput.finished,
                        backgroundColor: COLORS.finished
                    },
                    {
                        label: config.texts.canceled,
                        data: queue.throughput.canceled,
                        backgroundColor: COLORS.canceled
                    },
                    {
                        // Failed attempts (retried or not): a line of its own, not stacked.
                        type: 'line',
                        label: config.texts.failedSeries,
                        data: queue.throughput.failed,
                        stack: 'failed',
                        borderColor: COLORS.failed,
                        backgroundColor: COLORS.failed,
                        pointRadius: 1,
                        borderWidth: 2
                    }
                ]
            },
            options: {
                maintainAspectRatio: false,
                animation: false,
                scales: {
                    x: {stacked: true, ticks: {maxTicksLimit: 12}},
                    y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}
                }
            }
        });
        charts[queue.field] = {tally: tally, throughput: throughput, filterUrls: queue.filter_urls};
    }

    function render(queue) {
        const section = sectionOf(queue.field);
        if (!section) {
            return;
        }
        section.querySelectorAll('[data-figure]').forEach((element) => {
            const key = element.dataset.figure;
            element.textContent = key === 'latency_seconds'
                ? formatAge(queue[key]) : String(queue[key]);
        });
        section.querySelectorAll('[data-tally]').forEach((element) => {
            element.textContent = queue.tally_text[element.dataset.tally];
        });
        const note = section.querySelector('[data-estimated-note]');
        if (note) {  // a dashboard template of your own may leave it out
            note.hidden = queue.estimated.length === 0;
        }
        const stalled = section.querySelector('[data-alert="stalled"]');
        stalled.classList.toggle('modelqueue-alert', queue.stalled > 0);
        section.querySelector('[data-alert="failed_last_hour"]')
            .classList.toggle('modelqueue-alert', queue.failed_last_hour > 0);
        section.querySelector('[data-alert="workers_lost"]')
            .classList.toggle('modelqueue-alert', queue.workers_lost > 0);

        const chart = charts[queue.field];
        chart.filterUrls = queue.filter_urls;
        chart.tally.data.datasets[0].data = STATES.map((name) => queue.tally[name]);
        chart.tally.update('none');
        chart.throughput.data.labels = queue.throughput.minutes.map(minuteLabel);
        chart.throughput.data.datasets[0].data = queue.throughput.finished;
        chart.throughput.data.datasets[1].data = queue.throughput.canceled;
        chart.throughput.data.datasets[2].data = queue.throughput.failed;
        chart.throughput.update('none');
    }

    function refreshActivity() {
        // Failures, workers and stalled rows come as HTML that Django's
        // templates rendered (and escaped); each queue's part replaces its own.
        return fetch(config.activityUrl, {credentials: 'same-origin'})
            .then((response) => {
                if (!response.ok) {
                    throw new Error(response.status + ' ' + response.statusText);
                }
                return response.text();
            })
            .then((html) => {
                const parsed = new DOMParser().parseFromString(html, 'text/html');
                parsed.querySelectorAll('[data-activity]').forEach((fresh) => {
                    const section = sectionOf(fresh.dataset.activity);
                    const current = section && section.querySelector('[data-activity]');
                    if (current) {
                        current.replaceWith(document.importNode(fresh, true));
                    }
                });
            });
    }

    function refresh() {
        fetch(config.dataUrl, {
            credentials: 'same-origin',
            headers: {Accept: 'application/json'}
        })
            .then((response) => {
                if (!response.ok) {
                    throw new Error(response.status + ' ' + response.statusText);
                }
                return response.json();
            })
            .then((data) => refreshActivity().then(() => data))
            .then((data) => {
                data.queues.forEach(render);
                const reads = document.querySelector('[data-reads]');
                if (reads && data.reads) {
                    reads.textContent = data.reads.note || '';
                    reads.hidden = !data.reads.note;
                    reads.classList.toggle('modelqueue-reads-fallback', data.reads.fell_back);
                }
                refreshes += 1;
                root.dataset.refreshes = String(refreshes);
                root.dataset.generated = data.generated;
                statusLine.classList.remove('modelqueue-failed');
                statusLine.textContent = config.texts.updated + ' '
                    + data.generated.slice(11, 19) + ' UTC';
            })
            .catch((error) => {
                statusLine.classList.add('modelqueue-failed');
                statusLine.textContent = config.texts.failed + ' (' + error.message + ')';
            })
            .finally(() => {
                window.setTimeout(refresh, config.refreshSeconds * 1000);
            });
    }

    config.queues.forEach(createCharts);
    config.queues.forEach(render);
    root.dataset.refreshes = '0';
    window.setTimeout(refresh, config.refreshSeconds * 1000);
}());
