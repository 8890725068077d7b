import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, test } from '@jest/globals';

/*
 * jest keeps a module registry of its own, so the stand-in for dockerode's BuildKit session
 * module is checked where it matters: in a plain Node process, as bin/pic runs the operator.
 */
const clientModule = fileURLToPath(new URL('../../controllers/docker-client.js', import.meta.url));

const probe = `
import { createRequire } from 'node:module';
const { dockerClient } = await import(process.argv[1]);
const docker = await dockerClient();
const ping = String(await docker.ping());
const build = await new Promise((resolve) => {
  docker.buildImage({ context: '/nonexistent', src: [] }, { version: '2' }, (err) => resolve(err ? err.message : 'no error'));
});
const loaded = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({
  ping,
  build,
  dockerode: loaded.some((m) => m.includes('/dockerode/')),
  grpc: loaded.filter((m) => m.includes('/@grpc/') || m.includes('/protobufjs/')),
}));
`;

describe('dockerClient', () => {
  test('talks to the engine without loading BuildKit session support, and refuses a BuildKit build', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe, clientModule], { timeout: 30_000 });
    const report = JSON.parse(stdout) as { ping: string; build: string; dockerode: boolean; grpc: string[] };
    expect(report.ping).toBe('OK');
    expect(report.dockerode).toBe(true);
    expect(report.grpc).toEqual([]);
    expect(report.build).toMatch(/BuildKit sessions are not loaded by pic/);
  });
});
