/**
 * A test cell whose services may leave through a Connection: busybox services (tests/support/cell.ts)
 * whose manifests allow `wireguard_ext`, and the example catalog's WireGuard exit
 * (examples/store/services/exit-wireguard, image from examples/images/build-exits.sh) in its store,
 * its health checked every 2 s instead of 10 so the tests wait less. Connections and assignments
 * are written as an admin writes them.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { instanceIdOf } from '../../controllers/reconcile-connection.js';
import { createTestCell, serviceInstallDocument, writeDocumentFile, type TestCell } from './cell.js';

const EXIT_PACKAGE = path.join(process.cwd(), 'examples', 'store', 'services', 'exit-wireguard');

export interface EgressCell extends TestCell {
  /** Writes connections/<name>.yaml, and the wg-quick file beside it (0600) when one is given. */
  writeConnection(name: string, spec: Record<string, unknown>, wgQuick?: string): Promise<void>;
  /** Writes services/<id>.yaml, on `connection` or on default. */
  assign(id: string, connection?: string): Promise<void>;
  /** The exit container of a Connection. */
  exitName(connection: string): string;
}

export async function createEgressCell(services: string[], prefix: string): Promise<EgressCell> {
  const cell = await createTestCell(services.map((id) => ({ id })), { prefix });
  for (const id of services) {
    const file = path.join(cell.storeDir, 'services', id, 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    manifest.capabilities = { ...(manifest.capabilities as object), has_egress: true };
    manifest.egress = { default: 'default', allowed: ['default', 'wireguard_ext'] };
    await fs.writeFile(file, JSON.stringify(manifest, null, 2));
  }
  const exitDir = path.join(cell.storeDir, 'services', 'exit-wireguard');
  await fs.mkdir(exitDir, { recursive: true });
  for (const file of ['manifest.json', 'compose-template.yml']) {
    const text = await fs.readFile(path.join(EXIT_PACKAGE, file), 'utf8');
    await fs.writeFile(path.join(exitDir, file), text.replaceAll('git.pic.ngo/roof/pic-exit-wireguard@', 'pictest/pic-exit-wireguard@').replace('interval: 10s', 'interval: 2s'));
  }
  const index = JSON.parse(await fs.readFile(path.join(cell.storeDir, 'index.json'), 'utf8')) as object[];
  index.push({ id: 'exit-wireguard', name: 'WireGuard exit', description: 'the wireguard_ext exit', version: '1.0.0', author: 'pic examples' });
  await fs.writeFile(path.join(cell.storeDir, 'index.json'), JSON.stringify(index));

  return {
    ...cell,
    async writeConnection(name, spec, wgQuick) {
      if (wgQuick !== undefined) await fs.writeFile(path.join(cell.cellDir, 'connections', `${name}.conf`), wgQuick, { mode: 0o600 });
      await writeDocumentFile(
        path.join(cell.cellDir, 'connections', `${name}.yaml`),
        `apiVersion: pic.ngo/v1alpha1\nkind: Connection\nmetadata: {name: ${name}}\nspec: ${JSON.stringify(spec)}\n`,
      );
    },
    async assign(id, connection) {
      await writeDocumentFile(path.join(cell.cellDir, 'services', `${id}.yaml`), serviceInstallDocument(id, {}, connection));
    },
    exitName: (connection) => `cell-exit-${instanceIdOf(connection)}`,
  };
}
