/// The console's script: reads the API every few seconds for the view on screen and sends the operator's
/// changes to it (the daemon checks, applies and audits them exactly as for any other client). Everything
/// the API returns is put on the page as text, never as markup.
enum ConsoleScript {
    static let javascript = #"""
        'use strict';
        // `generation` grows with every change: a reading begun before a change is not shown after it.
        const state = { token: sessionStorage.getItem('ikeproxy-token'), view: 'overview', timer: null, busy: false, again: false, generation: 0 };
        const refreshSeconds = 3;

        function el(tag, attributes, ...children) {
          const node = document.createElement(tag);
          for (const [key, value] of Object.entries(attributes || {})) {
            if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
            else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value === true ? '' : String(value));
          }
          for (const child of children.flat()) {
            if (child === null || child === undefined) continue;
            node.append(child instanceof Node ? child : document.createTextNode(String(child)));
          }
          return node;
        }
        const svgNS = 'http://www.w3.org/2000/svg';
        function svg(tag, attributes, ...children) {
          const node = document.createElementNS(svgNS, tag);
          for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
          for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
          return node;
        }

        async function api(method, path, body) {
          const headers = {};
          if (state.token) headers['Authorization'] = 'Bearer ' + state.token;
          if (body !== undefined) headers['Content-Type'] = 'application/json';
          const response = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
          const text = await response.text();
          let json = null;
          try { json = JSON.parse(text); } catch (error) { json = null; }
          return { status: response.status, ok: response.ok, json, text };
        }

        function say(text, isError) {
          const box = document.getElementById('message');
          box.textContent = text;
          box.className = isError ? 'error' : '';
          box.hidden = !text;
        }

        /// A change: the answer is shown whatever it is (a reader's 403 says why), then the view is read again.
        async function change(method, path, body, done) {
          const answer = await api(method, path, body);
          state.generation += 1;
          if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
          if (answer.ok) say(done + ' (' + answer.status + ')', false);
          else say('Refused (' + answer.status + '): ' + ((answer.json && answer.json.error) || answer.text), true);
          await refresh(true);
          return answer;
        }

        function table(headings, rows, empty) {
          if (rows.length === 0) return el('p', { class: 'muted' }, empty);
          return el('div', { class: 'scroll' }, el('table', {},
            el('thead', {}, el('tr', {}, headings.map((heading) => el('th', {}, heading)))),
            el('tbody', {}, rows.map((cells) => el('tr', {}, cells.map((cell) => cell instanceof Node ? el('td', {}, cell) : el('td', {}, cell ?? '-')))))));
        }

        function card(label, value, id) {
          return el('div', { class: 'card', id }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value));
        }

        function octets(value) {
          if (value === null || value === undefined) return '-';
          const units = ['B', 'kB', 'MB', 'GB', 'TB'];
          let number = value, unit = 0;
          while (number >= 1000 && unit < units.length - 1) { number /= 1000; unit += 1; }
          return (unit === 0 ? number : number.toFixed(1)) + ' ' + units[unit];
        }

        function duration(seconds) {
          if (seconds === null || seconds === undefined) return '-';
          if (seconds < 120) return seconds + ' s';
          if (seconds < 7200) return Math.round(seconds / 60) + ' min';
          return (seconds / 3600).toFixed(1) + ' h';
        }

        // MARK: views

        async function overview() {
          const [status, terminals] = await Promise.all([api('GET', '/v1/status'), api('GET', '/v1/terminals')]);
          if (!status.ok) return failed(status);
          const s = status.json;
          const list = terminals.ok ? terminals.json.terminals : [];
          const ha = s.high_availability;
          const failures = s.recent_failures || [];
          return [
            el('h2', {}, 'Overview'),
            el('div', { class: 'cards' },
              card('Role', ha ? ha.role + ' (' + ha.node + ')' : 'single daemon', 'card-role'),
              card('Uptime', duration(s.uptime_seconds), 'card-uptime'),
              card('Sealing token or key', s.secrets_available == null ? 'no store' : (s.secrets_available ? 'present' : 'ABSENT'), 'card-token'),
              card('Terminals', list.filter((t) => t.status === 'registered').length, 'card-terminals'),
              card('Pending hosts', list.filter((t) => t.status === 'pending' || t.status === 'unenrolled').length, 'card-pending'),
              card('IKE SAs', s.ike_sas, 'card-ike-sas'),
              card('CHILD SAs', s.sas, 'card-child-sas'),
              card('Negotiating', s.negotiations_in_flight, 'card-negotiating'),
              card('Recent failures', failures.length, 'card-failures')),
            el('h2', {}, 'Recent failures'),
            table(['When', 'Kind', 'Connection', 'Peer', 'Reason'],
              failures.map((f) => [duration(f.seconds_ago) + ' ago', f.kind, f.connection, f.peer, f.reason]), 'No failed negotiation since the start.'),
            el('h2', {}, 'Data path'),
            table(['Counter', 'Value'], Object.entries(s.data_path || {}).filter(([, v]) => v !== 0).sort().map(([k, v]) => [k, v]), 'No traffic yet.'),
          ];
        }

        function approveForm(host) {
          const id = el('input', { name: 'terminal_id', type: 'number', min: 0, required: true, placeholder: 'e.g. 7' });
          const key = el('input', { name: 'enrollment_key_hex', required: true, pattern: '[0-9a-fA-F]{32,}', placeholder: 'hex, 16 octets or more' });
          return el('form', { class: 'inline', 'data-mac': host.mac, onsubmit: (event) => {
            event.preventDefault();
            // A MAC address's characters (hex digits and colons) go into the path as they are.
            change('POST', '/v1/terminals/' + host.mac + '/approve',
              { terminal_id: Number(id.value), enrollment_key_hex: key.value }, 'Approved ' + host.mac);
          } }, el('label', {}, 'Terminal ID', id), el('label', {}, 'Enrollment key', key), el('button', { type: 'submit', class: 'primary' }, 'Approve'));
        }

        async function terminals() {
          const answer = await api('GET', '/v1/terminals');
          if (!answer.ok) return failed(answer);
          const list = answer.json.terminals;
          const pending = list.filter((t) => t.mac && (t.status === 'pending' || t.status === 'unenrolled'));
          return [
            el('h2', {}, 'Terminals and discovered hosts'),
            table(['Status', 'ID', 'MAC', 'IPv4', 'IPv6', 'Port', 'Seen', 'SAs', 'Unacknowledged', ''],
              list.map((t) => [el('span', { class: 'status-' + t.status.replace(' ', '-') }, t.status), t.terminal_id, t.mac, t.ipv4.join(' '), t.ipv6.join(' '),
                t.port, t.last_seen_seconds_ago == null ? '-' : duration(t.last_seen_seconds_ago) + ' ago', t.sas, t.key_delivery_unacknowledged,
                t.status === 'registered' && t.terminal_id != null
                  ? el('button', { class: 'danger', 'data-remove': t.terminal_id, onclick: () => {
                    if (confirm('Stop acting for terminal ' + t.terminal_id + '? Its SAs are deleted.')) change('DELETE', '/v1/terminals/' + t.terminal_id, undefined, 'Removed terminal ' + t.terminal_id);
                  } }, 'Remove') : '']), 'No host known yet.'),
            el('h2', {}, 'Pending hosts to approve'),
            pending.length === 0 ? el('p', { class: 'muted' }, 'None.') : pending.map((host) =>
              el('div', {}, el('strong', {}, host.mac + ' ' + host.ipv4.concat(host.ipv6).join(' ')), approveForm(host))),
          ];
        }

        async function sas() {
          const answer = await api('GET', '/v1/sas');
          if (!answer.ok) return failed(answer);
          const list = answer.json.sas;
          return [
            el('h2', {}, 'CHILD SAs (' + list.length + ')'),
            table(['Terminal', 'Peer', 'Algorithms', 'IKE key exchanges', 'SPI in', 'SPI out', 'Age', 'Rekey in', 'In', 'Out', 'Packets in/out', ''],
              list.map((sa) => [sa.terminal, sa.peer, sa.cipher_suite, (sa.ike_key_exchanges || []).join('+') + (sa.ppk_id ? ' + PPK ' + sa.ppk_id : ''),
                sa.spi_in, sa.spi_out, duration(sa.age_seconds), duration(sa.rekey_in_seconds), octets(sa.octets_in), octets(sa.octets_out),
                (sa.packets_in ?? '-') + ' / ' + (sa.packets_out ?? '-'),
                el('button', { class: 'danger', 'data-delete-sa': sa.spi_in, onclick: () => change('DELETE', '/v1/sas/' + sa.spi_in, undefined, 'Deleted SA ' + sa.spi_in) }, 'Delete')]),
              'No SA held.'),
          ];
        }

        function lineChart(samples) {
          // Rates between consecutive samples of the running totals, bytes per second, over the last hour.
          const width = 640, height = 180, left = 52, bottom = 20;
          const points = [];
          for (let i = 1; i < samples.length; i += 1) {
            const seconds = samples[i - 1].seconds_ago - samples[i].seconds_ago;
            if (seconds <= 0) continue;
            points.push({ ago: samples[i].seconds_ago, in: (samples[i].octets_in - samples[i - 1].octets_in) / seconds, out: (samples[i].octets_out - samples[i - 1].octets_out) / seconds });
          }
          const top = Math.max(1, ...points.map((p) => Math.max(p.in, p.out)));
          // The last hour, or as much of it as the daemon has seen since it started.
          const span = Math.min(3600, Math.max(60, ...samples.map((sample) => sample.seconds_ago)));
          const x = (ago) => left + (width - left - 8) * (1 - ago / span);
          const y = (rate) => height - bottom - (height - bottom - 10) * rate / top;
          const line = (key) => points.map((p) => x(p.ago).toFixed(1) + ',' + y(p[key]).toFixed(1)).join(' ');
          return svg('svg', { class: 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'img' },
            svg('text', { x: 4, y: 14 }, octets(top) + '/s'), svg('text', { x: 4, y: height - bottom }, '0'),
            svg('text', { x: left, y: height - 4 }, '-' + duration(span)), svg('text', { x: width - 40, y: height - 4 }, 'now'),
            svg('line', { x1: left, y1: height - bottom, x2: width - 8, y2: height - bottom, stroke: '#d5dbe1' }),
            svg('polyline', { class: 'in', points: line('in') }), svg('polyline', { class: 'out', points: line('out') }));
        }

        function histogram(buckets) {
          const width = 640, height = 180, bottom = 20;
          const bars = [];
          let previous = 0;
          for (const bucket of buckets) { bars.push({ label: bucket.le, count: bucket.count - previous }); previous = bucket.count; }
          const most = Math.max(0, ...bars.map((b) => b.count));
          const top = Math.max(1, most);
          const slot = (width - 20) / Math.max(1, bars.length);
          return svg('svg', { class: 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'img' },
            ...bars.map((b, i) => svg('rect', { class: 'bar', x: 10 + i * slot + 2, width: slot - 4, y: height - bottom - (height - bottom - 14) * b.count / top, height: (height - bottom - 14) * b.count / top })),
            ...bars.map((b, i) => svg('text', { x: 10 + i * slot + 2, y: height - 4 }, b.label === '+Inf' ? '>' : '≤' + b.label + 's')),
            svg('text', { x: 10, y: 12 }, most + (most === 1 ? ' negotiation' : ' negotiations') + ' in the highest bar'));
        }

        async function charts() {
          const [traffic, metrics] = await Promise.all([api('GET', '/v1/traffic'), api('GET', '/metrics')]);
          if (!traffic.ok) return failed(traffic);
          const buckets = [];
          for (const line of (metrics.ok ? metrics.text : '').split('\n')) {
            const match = /^ikeproxy_negotiation_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
            if (match) buckets.push({ le: match[1], count: Number(match[2]) });
          }
          return [
            el('h2', {}, 'Traffic of the busiest terminals (up to 20), bytes/s over the last hour'),
            el('p', { class: 'legend' }, el('span', { class: 'in' }, '— received'), el('span', { class: 'out' }, '— sent'),
              el('span', { class: 'muted' }, 'as each terminal reports its SAs\' counters; a sample every ' + traffic.json.interval_seconds + ' s')),
            traffic.json.terminals.length === 0 ? el('p', { class: 'muted' }, 'No terminal has reported traffic yet.')
              : traffic.json.terminals.map((t) => el('div', { 'data-terminal': t.terminal }, el('h2', {}, t.terminal), lineChart(t.samples))),
            el('h2', {}, 'Negotiation time, from a terminal\'s first packet to its keys'),
            buckets.length === 0 || buckets[buckets.length - 1].count === 0
              ? el('p', { class: 'muted', id: 'no-negotiations' }, 'No negotiation started by the proxy yet (those a peer starts are not timed here).')
              : histogram(buckets),
          ];
        }

        function ruleFields(rule) {
          const field = (name, label, value, options) => options
            ? el('label', {}, label, el('select', { name }, options.map((o) => el('option', { value: o, selected: o === value }, o))))
            : el('label', {}, label, el('input', { name, value: value ?? '', size: 14 }));
          return [field('source', 'Source', rule.source ?? 'any'), field('destination', 'Destination', rule.destination ?? 'any'),
            field('protocol', 'Protocol', rule.protocol ?? 'any'), field('source_ports', 'Source ports', rule.source_ports ?? 'any'),
            field('destination_ports', 'Destination ports', rule.destination_ports ?? 'any'),
            field('action', 'Action', rule.action ?? 'discard', ['bypass', 'discard', 'protect']), field('profile', 'Profile (protect)', rule.profile ?? '')];
        }

        function ruleFrom(form) {
          const rule = {};
          for (const name of ['source', 'destination', 'protocol', 'source_ports', 'destination_ports', 'action', 'profile']) {
            const value = form.elements[name].value.trim();
            if (value !== '') rule[name] = value;
          }
          if (rule.action !== 'protect') delete rule.profile;
          return rule;
        }

        function plainRule(rule) {
          const copy = Object.assign({}, rule);
          delete copy.position;
          if (copy.profile === null || copy.profile === undefined) delete copy.profile;
          return copy;
        }

        async function policy() {
          const answer = await api('GET', '/v1/policies');
          if (!answer.ok) return failed(answer);
          const rules = answer.json.rules;
          const replace = (list, done) => change('PUT', '/v1/policies', { rules: list.map(plainRule), default: answer.json.default }, done);
          const move = (index, by) => { const list = rules.slice(); const [rule] = list.splice(index, 1); list.splice(index + by, 0, rule); replace(list, 'Moved rule ' + index); };
          const editing = state.editing;
          return [
            el('h2', {}, 'Policy rules, first match wins (default: ' + answer.json.default + ')'),
            table(['#', 'Source', 'Destination', 'Protocol', 'Source ports', 'Destination ports', 'Action', 'Profile', ''],
              rules.map((r, index) => [r.position, r.source, r.destination, r.protocol, r.source_ports, r.destination_ports, r.action, r.profile,
                el('span', {},
                  el('button', { disabled: index === 0, onclick: () => move(index, -1), title: 'up' }, '↑'), ' ',
                  el('button', { disabled: index === rules.length - 1, onclick: () => move(index, 1), title: 'down' }, '↓'), ' ',
                  el('button', { 'data-edit': r.position, onclick: () => { state.editing = index; refresh(true); } }, 'Edit'), ' ',
                  el('button', { class: 'danger', 'data-remove-rule': r.position, onclick: () => change('DELETE', '/v1/policies/' + r.position, undefined, 'Removed rule ' + r.position) }, 'Remove'))]),
              'No rule: every packet gets the default.'),
            editing !== undefined && rules[editing] ? [el('h2', {}, 'Edit rule ' + editing), el('form', { class: 'inline', id: 'edit-rule', onsubmit: (event) => {
              event.preventDefault();
              const list = rules.slice();
              list[editing] = ruleFrom(event.target);
              state.editing = undefined;
              replace(list, 'Changed rule ' + editing);
            } }, ruleFields(rules[editing]), el('button', { type: 'submit', class: 'primary' }, 'Save'),
              el('button', { type: 'button', onclick: () => { state.editing = undefined; refresh(true); } }, 'Cancel'))] : null,
            el('h2', {}, 'Add a rule'),
            el('form', { class: 'inline', id: 'add-rule', onsubmit: (event) => {
              event.preventDefault();
              const position = event.target.elements.position.value.trim();
              const body = { rule: ruleFrom(event.target) };
              if (position !== '') body.position = Number(position);
              change('POST', '/v1/policies', body, 'Added a rule');
            } }, ruleFields({}), el('label', {}, 'Position (empty: last)', el('input', { name: 'position', type: 'number', min: 0, size: 4 })),
              el('button', { type: 'submit', class: 'primary' }, 'Add')),
          ];
        }

        async function audit() {
          const answer = await api('GET', '/v1/audit');
          if (!answer.ok) return failed(answer);
          const search = el('input', { id: 'audit-search', type: 'search', placeholder: 'Search who, action, detail', value: state.search || '' });
          const rows = answer.json.entries.slice().reverse();
          const body = el('div', {});
          const draw = () => {
            state.search = search.value;
            const words = search.value.toLowerCase().split(/\s+/).filter((w) => w);
            const shown = rows.filter((e) => words.every((w) => (e.time + ' ' + e.who + ' ' + e.action + ' ' + e.detail).toLowerCase().includes(w)));
            body.replaceChildren(table(['Time (UTC)', 'Who', 'Action', 'Detail'], shown.map((e) => [e.time, e.who, e.action, el('span', {}, e.detail)]), 'No entry matches.'));
          };
          search.addEventListener('input', draw);
          draw();
          return [el('h2', {}, 'Audit log (' + answer.json.total + ' entries' + (answer.json.stored ? ', from the store' : '') + ')'), search, body];
        }

        function failed(answer) {
          if (answer.status === 401) { logout('The token was refused: log in again.'); return []; }
          return [el('p', { class: 'muted' }, 'The daemon answered ' + answer.status + ': ' + ((answer.json && answer.json.error) || answer.text))];
        }

        const views = { overview, terminals, sas, charts, policy, audit };

        async function refresh(afterChange) {
          if (document.getElementById('view').hidden) return;
          // One reading at a time; one asked for meanwhile runs when it ends.
          if (state.busy) { state.again = true; return; }
          // Typing into a form is not interrupted by the periodic reading.
          const active = document.activeElement;
          if (!afterChange && active && active.closest && active.closest('form') && active.tagName !== 'BUTTON') return;
          state.busy = true;
          try {
            const generation = state.generation, viewName = state.view;
            const content = await views[viewName]();
            if (generation !== state.generation || viewName !== state.view) { state.again = true; return; }
            const view = document.getElementById('view');
            view.replaceChildren(...[content].flat(2).filter((node) => node));
            view.dataset.view = viewName;
            view.dataset.generation = String(generation);
            document.getElementById('updated').textContent = 'Updated ' + new Date().toLocaleTimeString() + '; every ' + refreshSeconds + ' s';
          } catch (error) {
            say('Cannot reach the daemon: ' + error.message, true);
          } finally {
            state.busy = false;
            if (state.again) { state.again = false; refresh(true); }
          }
        }

        function show(view) {
          state.view = views[view] ? view : 'overview';
          state.generation += 1;
          for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('current', link.dataset.view === state.view);
          say('', false);
          refresh(true);
        }

        function start() {
          document.getElementById('login').hidden = true;
          document.getElementById('nav').hidden = false;
          document.getElementById('view').hidden = false;
          show(location.hash.slice(1) || 'overview');
          clearInterval(state.timer);
          state.timer = setInterval(refresh, refreshSeconds * 1000);
        }

        function logout(text) {
          state.token = null;
          sessionStorage.removeItem('ikeproxy-token');
          clearInterval(state.timer);
          document.getElementById('nav').hidden = true;
          // Nothing read with the old credentials stays in the page.
          document.getElementById('view').hidden = true;
          document.getElementById('view').replaceChildren();
          document.getElementById('view').dataset.view = '';
          document.getElementById('token').value = '';
          document.getElementById('login').hidden = false;
          say(text || '', Boolean(text));
        }

        async function logIn(token) {
          state.token = token;
          const answer = await api('GET', '/v1/status');
          if (answer.ok) {
            if (token) sessionStorage.setItem('ikeproxy-token', token);
            start();
          } else {
            logout(answer.status === 401 ? (token ? 'This token is not an administrator\'s.' : 'No administrator\'s client certificate was presented.')
              : 'The daemon answered ' + answer.status + ': ' + ((answer.json && answer.json.error) || answer.text));
          }
        }

        document.addEventListener('DOMContentLoaded', () => {
          document.getElementById('login-form').addEventListener('submit', (event) => {
            event.preventDefault();
            logIn(document.getElementById('token').value.trim());
          });
          document.getElementById('use-certificate').addEventListener('click', () => logIn(null));
          document.getElementById('logout').addEventListener('click', () => logout(''));
          window.addEventListener('hashchange', () => show(location.hash.slice(1)));
          if (state.token) logIn(state.token); else logout('');
        });
        """#
}
