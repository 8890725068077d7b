/**
 * `pic init DIR --domain DOMAIN`: a first real cell in one command, as `flux bootstrap` is for a
 * cluster. It writes a cell folder that validates as written (cell.yaml with the core stack, a
 * catalog folder unless --store names one, services/ and peers/ with one commented example each,
 * a .gitignore for .pic/, a README of next steps), makes it a Git repository with a first commit,
 * and prints the systemd settings that make `pic run --git` follow it once it is pushed. It
 * never writes into a folder that exists.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Command } from './command.js';
import { stringFlag } from './command.js';
import { safeLine } from '../safe-text.js';
import { UsageError } from './usage.js';

const execFileAsync = promisify(execFile);

/** A cell name from the folder's name: lowercase letters, digits and dashes, starting with a letter. */
export function cellNameOf(dir: string): string {
  const name = path
    .basename(path.resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+$/, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return name === '' ? 'cell' : name;
}

const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const ENDPOINT = /^([a-z0-9.-]+|\[[0-9a-f:]+\]|\d+\.\d+\.\d+\.\d+):(\d{1,5})$/i;

export interface InitOptions {
  dir: string;
  domain: string;
  endpoint?: string;
  store?: string;
}

/** The files of a new cell folder, by path relative to it. Pure. */
export function initFiles(opts: InitOptions): Record<string, string> {
  const name = cellNameOf(opts.dir);
  const endpoint = opts.endpoint ?? `${opts.domain}:51820`;
  const store = opts.store ?? './store';
  const files: Record<string, string> = {
    'cell.yaml': `# The cell: exactly one Cell document, in cell.yaml. The documents beside it (services/, peers/,
# connections/) say what runs on it. \`pic validate .\` checks all of it the way the operator does.
apiVersion: pic.ngo/v1alpha1
kind: Cell
metadata:
  name: ${name}
spec:
  domain: ${opts.domain}
  # The service catalog: index.json and services/<id>/{manifest.json,compose-template.yml}.
  store:
    path: ${store}
  network:
    name: pic-${name}
    subnet: 172.20.0.0/16
    servicePool: 172.20.0.20-172.20.0.254
  # warn installs images nobody signed and says so in each status; once you have the catalog
  # publisher's cosign key, use {mode: enforce, publicKey: ./cosign.pub}.
  imageVerification:
    mode: warn
  allowedImagePrefix: git.pic.ngo/roof/
  # The core stack, run by pic itself: DNS for the domain, Caddy in front of every service,
  # WireGuard for the peers.
  dns:
    run:
      image: git.pic.ngo/roof/pic-core-dns:1.0.0
      address: 172.20.0.3
  caddy:
    tls:
      mode: internal
    run:
      image: git.pic.ngo/roof/pic-core-caddy:1.0.0
      address: 172.20.0.2
  wireguard:
    subnet: 10.8.0.0/24
    # Where peers reach the cell: a public name or address and the UDP port forwarded to it.
    endpoint: ${endpoint}
    run:
      image: git.pic.ngo/roof/pic-core-wireguard:1.0.0
      address: 172.20.0.4
      publish:
        port: 51820
`,
    '.gitignore': '# What pic keeps beside the documents (the state directory it was given) is not desired state.\n.pic/\n',
    'services/example.yaml': `# A store service this cell runs. Uncomment (and rename the file after the service), commit and
# push: the operator installs it. The catalog (spec.store of cell.yaml) must offer the service.
#
# apiVersion: pic.ngo/v1alpha1
# kind: ServiceInstall
# metadata:
#   name: notes
# spec:
#   version: 1.0.0
#   config: {}
`,
    'peers/example.yaml': `# A person or device of the cell and the services it has an account on. Uncomment (and rename the
# file after the peer), commit and push; \`pic credentials alice\` then prints the peer's details.
#
# apiVersion: pic.ngo/v1alpha1
# kind: PeerAccount
# metadata:
#   name: alice
# spec:
#   services: [notes]
`,
    'README.md': `# Cell ${name} (${opts.domain})

Written by \`pic init\`. Next steps:

1. Put the images in place: the core images named in cell.yaml (\`examples/images/build-core.sh\`
   builds them) and the images of the services you install.
2. Fill the catalog (${store}): index.json and services/<id>/ for each service, or point
   spec.store.path at an existing catalog.
3. Check everything: \`pic validate .\` (the same checks the operator runs before it applies a commit).
4. Push this repository to a remote the cell can reach, and give the operator its URL (see the
   systemd settings \`pic init\` printed, or docs/admin-guide.md, "Following a Git remote").
5. Add services and peers by commits: copy services/example.yaml and peers/example.yaml.
   \`pic get\` shows which commit runs; \`pic describe Cell/${name}\` why one was refused.
`,
  };
  if (opts.store === undefined) {
    files['store/index.json'] = '[]\n';
    files['store/services/.gitkeep'] = '';
  }
  return files;
}

/** The environment settings of the systemd unit that make `pic run --git` follow the repository. */
export function systemdSettings(name: string): string[] {
  return [
    '# /etc/pic/pic.env (read by deploy/systemd/pic.service), once the repository is pushed:',
    'PIC_GIT_URL=https://git.example.org/you/' + name + '.git   # where you pushed it',
    'PIC_GIT_REF=main',
    'PIC_GIT_PATH=.',
    'PIC_GIT_INTERVAL=1m',
    '#PIC_GIT_PASSWORD_FILE=/etc/pic/git-token     # https: a token with read access',
    '#PIC_GIT_SSH_KEY=/etc/pic/deploy-key          # ssh: a deploy key ...',
    '#PIC_GIT_KNOWN_HOSTS=/etc/pic/known_hosts     # ... and the server\'s host key',
    '#PIC_GIT_VERIFY_COMMITS=/etc/pic/allowed_signers   # apply only commits signed by these keys',
  ];
}

async function gitIdentity(cwd: string): Promise<string[]> {
  const has = async (key: string) => execFileAsync('git', ['config', '--get', key], { cwd }).then(
    (r) => r.stdout.trim() !== '',
    () => false,
  );
  return (await has('user.name')) && (await has('user.email')) ? [] : ['-c', 'user.name=pic init', '-c', 'user.email=pic-init@localhost'];
}

export const initCommand: Command = {
  name: 'init',
  summary: 'Write a first cell folder as a Git repository, ready for pic run --git',
  args: 'DIR',
  description:
    'DIR must not exist: pic init never writes into an existing folder. The folder validates as written ' +
    '(pic validate DIR). It is made a Git repository (branch main) with a first commit; the systemd ' +
    'settings printed at the end make pic run --git follow it once it is pushed. Without --store, an ' +
    'empty catalog is written in DIR/store.',
  flags: [
    { name: 'domain', type: 'string', value: 'DOMAIN', help: 'the cell\'s public domain (required), e.g. home.example.org' },
    { name: 'endpoint', type: 'string', value: 'HOST:PORT', help: 'where peers reach the cell\'s WireGuard (default DOMAIN:51820)' },
    { name: 'store', type: 'string', value: 'PATH', help: 'the service catalog folder, relative to DIR or absolute (default: an empty DIR/store)', complete: 'dir' },
  ],
  examples: ['pic init home-cell --domain home.example.org', 'pic init home-cell --domain home.example.org --endpoint 203.0.113.7:51820 --store /srv/pic-store'],
  completeArgs: 'dir',
  async run(parsed, ctx) {
    const [dir, ...more] = parsed.positionals;
    if (dir === undefined || more.length > 0) throw new UsageError('pic init takes one DIR, a folder that does not exist yet');
    const domain = stringFlag(parsed, 'domain');
    if (domain === undefined) throw new UsageError('pic init needs --domain DOMAIN (the cell\'s public domain)');
    if (!DOMAIN.test(domain)) throw new UsageError(`--domain "${safeLine(domain)}" is not a domain name (lowercase, e.g. home.example.org)`);
    const endpoint = stringFlag(parsed, 'endpoint');
    if (endpoint !== undefined) {
      const m = ENDPOINT.exec(endpoint);
      const port = m ? Number(m[2]) : 0;
      if (!m || port < 1 || port > 65535) throw new UsageError(`--endpoint "${safeLine(endpoint)}" is not HOST:PORT (a port from 1 to 65535)`);
    }
    const store = stringFlag(parsed, 'store');
    if (store !== undefined) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) {
        throw new UsageError(`--store ${safeLine(store)}: pic init writes a folder that validates as written, and a published store is checked only against an operator's cache; give a catalog folder's PATH here, and set spec.store to {url: "${safeLine(store)}"} once the operator runs`);
      }
      const resolved = path.resolve(dir, store);
      const stat = await fs.stat(resolved).catch(() => undefined);
      if (!stat?.isDirectory()) throw new UsageError(`--store ${safeLine(store)}: no such folder (${safeLine(resolved)})`);
    }
    await fs.mkdir(path.dirname(path.resolve(dir)), { recursive: true });
    try {
      await fs.mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${safeLine(dir)} exists: pic init writes a new folder and never into an existing one`);
      throw err;
    }
    const files = initFiles({ dir, domain, ...(endpoint !== undefined ? { endpoint } : {}), ...(store !== undefined ? { store } : {}) });
    for (const [file, text] of Object.entries(files)) {
      const p = path.join(dir, file);
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, text, { flag: 'wx' });
    }
    const { runValidate } = await import('./validate.js');
    const verdict = await runValidate([dir]);
    if (verdict.exitCode !== 0) {
      for (const line of verdict.lines) ctx.io.err(line);
      ctx.io.err(`pic: the folder pic init wrote in ${safeLine(dir)} does not validate; this is a bug in pic init`);
      return 1;
    }
    await execFileAsync('git', ['init', '--quiet', '-b', 'main'], { cwd: dir });
    await execFileAsync('git', ['add', '--all'], { cwd: dir });
    await execFileAsync('git', [...(await gitIdentity(dir)), 'commit', '--quiet', '--no-verify', '-m', `A new cell for ${domain}, written by pic init`], { cwd: dir });
    const name = cellNameOf(dir);
    ctx.io.out(`wrote ${safeLine(dir)}: cell ${name} for ${domain}, ${verdict.summary}; a Git repository with one commit on main`);
    ctx.io.out('It runs once the core images and the services\' images are in place (README.md says how).');
    ctx.io.out('');
    for (const line of systemdSettings(name)) ctx.io.out(line);
    return 0;
  },
};

