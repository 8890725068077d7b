/**
 * The pure half of the Caddy reconciler: the route table, the rendered Caddyfile (golden files
 * under tests/golden/caddy; UPDATE_GOLDEN=1 rewrites them), the plan, and how Caddy's own running
 * config and error messages are read.
 */
import { promises as fs } from 'node:fs';
import { planCaddy, type CaddyObservation } from '../../reconcilers/caddy/index.js';
import { liveRoutes, liveServes } from '../../reconcilers/caddy/observe.js';
import { adminListenOf, renderCaddyfile, routesConcerned, sitesOf } from '../../reconcilers/caddy/render.js';
import { cellRoutes, cellRouteTable, type Route } from '../../reconcilers/caddy/routes.js';
import { unifiedDiffLines } from '../../reconcilers/shared/diff.js';
import { goldenCases, testRouting } from '../support/caddy.js';

const DOMAIN = 'alice.pic.ngo';
const route = (subdomain: string, backend: string, service: string | null): Route => ({ host: `${subdomain}.${DOMAIN}`, subdomain, backend, service });

describe('cellRoutes', () => {
  test.each([
    ['a primary subdomain', { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } }, [route('notes', 'cell-notes:8080', 'notes')]],
    [
      'extra_subdomains go to the same backend',
      { email: { subdomain: 'mail', backend: 'cell-mail:80', extra_subdomains: ['webmail', 'imap-ui'] } },
      [route('imap-ui', 'cell-mail:80', 'email'), route('mail', 'cell-mail:80', 'email'), route('webmail', 'cell-mail:80', 'email')],
    ],
    [
      'extra_backends keys go to their own backend',
      { files: { subdomain: 'files', backend: 'cell-filegator:8080', extra_backends: { webdav: 'cell-webdav:80' } } },
      [route('files', 'cell-filegator:8080', 'files'), route('webdav', 'cell-webdav:80', 'files')],
    ],
    [
      'a caddy_route subdomain of its own goes to the backend',
      { homepage: { subdomain: 'home', backend: 'cell-homepage:80', caddy_route: { subdomain: 'start' } } },
      [route('home', 'cell-homepage:80', 'homepage'), route('start', 'cell-homepage:80', 'homepage')],
    ],
    [
      'a caddy_route repeating the primary adds nothing',
      { homepage: { subdomain: 'home', backend: 'cell-homepage:80', caddy_route: { subdomain: 'home' } } },
      [route('home', 'cell-homepage:80', 'homepage')],
    ],
    ['a service without has_subdomain is not routed', { clock: { container_name: 'cell-clock' } }, []],
    [
      'has_subdomain false ignores leftover subdomain fields',
      { odd: { subdomain: 'odd', backend: 'cell-odd:80', capabilities: { has_subdomain: false } as never } },
      [],
    ],
    [
      'services sorted by subdomain, whatever order they came in',
      { zeta: { subdomain: 'alpha', backend: 'cell-zeta:1' }, alpha: { subdomain: 'zulu', backend: 'cell-alpha:1' } },
      [route('alpha', 'cell-zeta:1', 'zeta'), route('zulu', 'cell-alpha:1', 'alpha')],
    ],
  ])('%s', (_name, services, expected) => {
    expect(cellRoutes(testRouting({ domain: DOMAIN }, services))).toEqual(expected);
  });

  test('core sites come first, sorted, then the services', () => {
    const input = testRouting(
      { domain: DOMAIN, caddy: { sites: [{ subdomain: 'webui', backend: 'cell-webui:80' }, { subdomain: 'api', backend: 'cell-api:3000' }] } },
      { notes: { subdomain: 'notes', backend: 'cell-notes:8080' }, about: { subdomain: 'about', backend: 'cell-about:80' } },
    );
    expect(cellRoutes(input).map((r) => r.subdomain)).toEqual(['api', 'webui', 'about', 'notes']);
    expect(cellRoutes(input)[0]).toEqual(route('api', 'cell-api:3000', null));
  });

  test('a subdomain claimed twice stays with the first claim by service name, and the other is reported', () => {
    const input = testRouting(
      { domain: DOMAIN, caddy: { sites: [{ subdomain: 'webui', backend: 'cell-webui:80' }] } },
      {
        zeta: { subdomain: 'wiki', backend: 'cell-zeta:80' },
        alpha: { subdomain: 'wiki', backend: 'cell-alpha:80' },
        rogue: { subdomain: 'rogue', backend: 'cell-rogue:80', extra_backends: { webui: 'cell-rogue:81' } },
      },
    );
    const table = cellRouteTable(input);
    expect(table.routes).toEqual([route('webui', 'cell-webui:80', null), route('rogue', 'cell-rogue:80', 'rogue'), route('wiki', 'cell-alpha:80', 'alpha')]);
    expect(table.conflicts).toEqual([
      { subdomain: 'webui', keptBy: 'cell', keptBackend: 'cell-webui:80', droppedFor: 'rogue', droppedBackend: 'cell-rogue:81' },
      { subdomain: 'wiki', keptBy: 'alpha', keptBackend: 'cell-alpha:80', droppedFor: 'zeta', droppedBackend: 'cell-zeta:80' },
    ]);
  });

  test('the same input in another order gives the same table', () => {
    const a = testRouting({ domain: DOMAIN }, { b: { subdomain: 'x', backend: 'cell-b:1' }, a: { subdomain: 'x', backend: 'cell-a:1' } });
    const b = { ...a, services: [...a.services].reverse() };
    expect(cellRouteTable(b)).toEqual(cellRouteTable(a));
  });
});

describe('renderCaddyfile golden files', () => {
  test('every case renders as its golden Caddyfile', async () => {
    const cases = await goldenCases('caddy', '.Caddyfile');
    expect(cases.length).toBeGreaterThanOrEqual(6);
    for (const c of cases) {
      const input = testRouting(c.input.cell, c.input.services);
      const rendered = renderCaddyfile(cellRoutes(input), {
        ...(input.cell.spec.caddy?.tls ? { tls: input.cell.spec.caddy.tls } : {}),
        ...(c.input.adminListen ? { adminListen: c.input.adminListen } : {}),
      });
      if (process.env.UPDATE_GOLDEN) await fs.writeFile(c.expectedFile, rendered.text);
      expect({ case: c.name, text: rendered.text }).toEqual({ case: c.name, text: await fs.readFile(c.expectedFile, 'utf8') });
    }
  });

  test('the same routes render the same bytes, with a header and a trailing newline', () => {
    const routes = [route('notes', 'cell-notes:8080', 'notes')];
    const a = renderCaddyfile(routes, { tls: { mode: 'off' } }).text;
    expect(renderCaddyfile([...routes], { tls: { mode: 'off' } }).text).toBe(a);
    expect(a.startsWith('# Generated by pic')).toBe(true);
    expect(a).toMatch(/Do not edit by hand/);
    expect(a.endsWith('}\n')).toBe(true);
    expect(a).toContain('http://notes.alice.pic.ngo {\n\treverse_proxy cell-notes:8080 {\n\t\tlb_try_duration 5s\n');
  });

  test.each([
    ['internal', { mode: 'internal' as const }, ['local_certs'], 'notes.alice.pic.ngo {'],
    ['acme with an email', { mode: 'acme' as const, email: 'me@example.org' }, ['email me@example.org'], 'notes.alice.pic.ngo {'],
    ['off', { mode: 'off' as const }, ['auto_https off'], 'http://notes.alice.pic.ngo {'],
  ])('TLS %s', (_name, tls, globals, site) => {
    const text = renderCaddyfile([route('notes', 'cell-notes:8080', 'notes')], { tls, adminListen: 'localhost:2019' }).text;
    expect(text).toContain(`{\n\tadmin localhost:2019\n${globals.map((g) => `\t${g}\n`).join('')}}\n`);
    expect(text).toContain(site);
  });

  test('site blocks record the lines they occupy', () => {
    const routes = [route('api', 'cell-api:3000', null), route('notes', 'cell-notes:8080', 'notes')];
    const rendered = renderCaddyfile(routes, { tls: { mode: 'off' } });
    const lines = rendered.text.split('\n');
    for (const s of rendered.sites) {
      const block = lines.slice(s.firstLine - 1, s.lastLine).join('\n');
      expect(block).toContain(`http://${s.route.host} {`);
      expect(block.endsWith('}')).toBe(true);
    }
  });

  test('the admin option and the sites can be read back from a rendered file', () => {
    const routes = [route('api', 'cell-api:3000', null), route('notes', 'cell-notes:8080', 'notes')];
    const text = renderCaddyfile(routes, { tls: { mode: 'internal' }, adminListen: '0.0.0.0:2019' }).text;
    expect(adminListenOf(text)).toBe('0.0.0.0:2019');
    expect(adminListenOf(renderCaddyfile(routes).text)).toBeUndefined();
    expect(adminListenOf('')).toBeUndefined();
    expect([...sitesOf(text)]).toEqual([
      ['api.alice.pic.ngo', 'cell-api:3000'],
      ['notes.alice.pic.ngo', 'cell-notes:8080'],
    ]);
  });
});

describe('routesConcerned', () => {
  const routes = [
    route('api', 'cell-api:3000', null),
    route('mail', 'cell-mail:80', 'email'),
    route('notes', 'cell-notes:8080', 'notes'),
    route('webmail', 'cell-mail:80', 'email'),
  ];
  const rendered = renderCaddyfile(routes, { tls: { mode: 'off' } });
  const lineOf = (host: string) => rendered.sites.find((s) => s.route.host === host)!.lastLine - 1;

  test('a cited line names every route of that service', () => {
    const message = `adapting config using caddyfile adapter: Caddyfile:${lineOf('webmail.alice.pic.ngo')}: unrecognized directive: x`;
    expect(routesConcerned(message, rendered, '').map((r) => r.host)).toEqual(['mail.alice.pic.ngo', 'webmail.alice.pic.ngo']);
  });

  test('a mentioned backend names its route, not one that merely starts the same', () => {
    const message = 'loading config: provision http.handlers.reverse_proxy: upstream cell-notes:8080: bad';
    expect(routesConcerned(message, rendered, '').map((r) => r.host)).toEqual(['notes.alice.pic.ngo']);
    expect(routesConcerned('dial cell-notes:80800 failed', rendered, rendered.text)).toEqual([]);
  });

  test('otherwise the routes that changed since the last accepted file', () => {
    const previous = renderCaddyfile(routes.filter((r) => r.subdomain !== 'notes'), { tls: { mode: 'off' } }).text;
    expect(routesConcerned('something went wrong', rendered, previous).map((r) => r.host)).toEqual(['notes.alice.pic.ngo']);
  });
});

describe('Caddy running config', () => {
  // What Caddy 2.6 holds after loading a Caddyfile with two sites, `admin 0.0.0.0:2019` and `auto_https off`.
  const running = {
    admin: { listen: '0.0.0.0:2019' },
    apps: {
      http: {
        servers: {
          srv0: {
            automatic_https: { disable: true },
            listen: [':80'],
            routes: [
              {
                handle: [{ handler: 'subroute', routes: [{ handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: 'cell-one:8080' }] }] }] }],
                match: [{ host: ['one.lab.pic.test'] }],
                terminal: true,
              },
              {
                handle: [{ handler: 'subroute', routes: [{ handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: 'cell-two:8080' }] }] }] }],
                match: [{ host: ['two.lab.pic.test'] }],
                terminal: true,
              },
            ],
          },
        },
      },
    },
  };
  const one: Route = { host: 'one.lab.pic.test', subdomain: 'one', backend: 'cell-one:8080', service: 'one' };
  const two: Route = { host: 'two.lab.pic.test', subdomain: 'two', backend: 'cell-two:8080', service: 'two' };

  test('hosts, upstreams and admin address are read from it', () => {
    const live = liveRoutes(running);
    expect(live.adminListen).toBe('0.0.0.0:2019');
    expect(live.empty).toBe(false);
    expect([...live.hosts]).toEqual([
      ['one.lab.pic.test', ['cell-one:8080']],
      ['two.lab.pic.test', ['cell-two:8080']],
    ]);
  });

  test.each([
    ['exactly the routes', [one, two], true],
    ['a route missing from Caddy', [one, two, { ...two, host: 'three.lab.pic.test', subdomain: 'three' }], false],
    ['an extra host in Caddy', [one], false],
    ['another backend', [one, { ...two, backend: 'cell-two:9090' }], false],
  ])('serves %s: %s', (_name, routes, expected) => {
    expect(liveServes(liveRoutes(running), routes)).toBe(expected);
  });

  test('a Caddy with no config serves nothing', () => {
    expect(liveRoutes(null)).toEqual({ hosts: new Map(), empty: true });
    expect(liveServes(liveRoutes(null), [one])).toBe(false);
    expect(liveServes(liveRoutes(null), [])).toBe(true);
  });
});

describe('planCaddy', () => {
  const input = testRouting(
    { domain: 'lab.pic.test', caddy: { adminAddress: '127.0.0.1:32019', tls: { mode: 'off' } } },
    { one: { subdomain: 'one', backend: 'cell-one:8080' } },
  );
  const file = '/state/caddy/Caddyfile';
  const rendered = renderCaddyfile(cellRoutes(input), { tls: { mode: 'off' }, adminListen: '0.0.0.0:2019' }).text;
  const serving = {
    admin: { listen: '0.0.0.0:2019' },
    apps: { http: { servers: { srv0: { routes: [{ match: [{ host: ['one.lab.pic.test'] }], handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: 'cell-one:8080' }] }] }] } } } },
  };

  test('in sync: no lines, nothing to write or load', () => {
    const observed: CaddyObservation = { file, current: rendered, live: { reachable: true, config: serving } };
    expect(planCaddy(input, observed)).toMatchObject({ fileChanged: false, reloadNeeded: false, diff: [] });
  });

  test('a new route: a unified diff of the file', () => {
    const observed: CaddyObservation = { file, current: rendered, live: { reachable: true, config: serving } };
    const more = testRouting(input.cell.spec, { one: { subdomain: 'one', backend: 'cell-one:8080' }, two: { subdomain: 'two', backend: 'cell-two:8080' } });
    const p = planCaddy(more, observed);
    expect(p.fileChanged).toBe(true);
    expect(p.diff.slice(0, 2)).toEqual([`--- ${file}`, `+++ ${file}`]);
    expect(p.diff).toContain('+http://two.lab.pic.test {');
    expect(p.diff.filter((l) => l.startsWith('-') && !l.startsWith('---'))).toEqual([]);
  });

  test("Caddy's running admin address is kept, whatever the file said", () => {
    const observed: CaddyObservation = { file, current: rendered.replace('admin 0.0.0.0:2019', 'admin localhost:2019'), live: { reachable: true, config: serving } };
    const p = planCaddy(input, observed);
    expect(p.rendered.text).toBe(rendered);
    expect(p.fileChanged).toBe(true);
  });

  test('Caddy without a config: reload the unchanged file, keeping its admin line', () => {
    const p = planCaddy(input, { file, current: rendered, live: { reachable: true, config: null } });
    expect(p).toMatchObject({ fileChanged: false, reloadNeeded: true, diff: [] });
  });

  test('Caddy running some other config: reload', () => {
    const other = { admin: { listen: '0.0.0.0:2019' }, apps: { http: { servers: { srv0: { routes: [] } } } } };
    expect(planCaddy(input, { file, current: rendered, live: { reachable: true, config: other } })).toMatchObject({ fileChanged: false, reloadNeeded: true });
  });

  test('no admin address: the file alone decides', () => {
    const noAdmin = testRouting({ domain: 'lab.pic.test', caddy: { tls: { mode: 'off' } } }, { one: { subdomain: 'one', backend: 'cell-one:8080' } });
    expect(planCaddy(noAdmin, { file, current: rendered })).toMatchObject({ fileChanged: false, reloadNeeded: false, diff: [] });
    expect(planCaddy(noAdmin, { file, current: '' }).diff).toContain('+http://one.lab.pic.test {');
  });
});

describe('unifiedDiffLines', () => {
  test('equal texts give no lines', () => {
    expect(unifiedDiffLines('f', 'a\nb\n', 'a\nb\n')).toEqual([]);
    expect(unifiedDiffLines('f', '', '')).toEqual([]);
  });

  test('a changed line', () => {
    expect(unifiedDiffLines('f', 'a\nb\nc\n', 'a\nB\nc\n')).toEqual(['--- f', '+++ f', '@@ -1,3 +1,3 @@', ' a', '-b', '+B', ' c']);
  });

  test('a new file', () => {
    expect(unifiedDiffLines('f', '', 'x\n')).toEqual(['--- f', '+++ f', '@@ -0,0 +1 @@', '+x']);
  });
});
