import { createRequire } from 'node:module';
import type Dockerode from 'dockerode';

/**
 * A Dockerode client for the engine at its default socket (or `options`).
 *
 * dockerode loads its BuildKit session support (gRPC, protobuf and uuid: about 8 MB resident) as
 * it starts, though only `buildImage` with BuildKit (`version: "2"`) uses it. pic never builds
 * an image, and the operator is meant to run for months on small hardware, so that one module
 * is given, before dockerode loads, a stand-in that answers such a build with an error. Should
 * dockerode move the module, the stand-in is simply not used.
 */
export async function dockerClient(options?: Dockerode.DockerOptions): Promise<Dockerode> {
  const require = createRequire(import.meta.url);
  let session: string | undefined;
  try {
    session = require.resolve('dockerode/lib/session.js');
  } catch {
    session = undefined;
  }
  if (session && !require.cache[session]) {
    const withoutSessions = (_docker: unknown, _auth: unknown, handler: (err: Error) => void): void => {
      handler(new Error('BuildKit sessions are not loaded by pic (it never builds images)'));
    };
    require.cache[session] = { id: session, filename: session, loaded: true, exports: withoutSessions } as unknown as NodeJS.Module;
  }
  const { default: Docker } = await import('dockerode');
  return new Docker(options);
}
