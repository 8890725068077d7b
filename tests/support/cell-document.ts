/** A valid Cell document for pure tests, with `extra` merged into its spec. */
import type { CellDocument, CellSpec } from '../../crds/types.js';

export function testCell(extra: Partial<CellSpec> = {}): CellDocument {
  return {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: 'alice' },
    spec: {
      domain: 'alice.pic.ngo',
      store: { path: './store' },
      network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
      imageVerification: { mode: 'off' },
      allowedImagePrefix: 'git.pic.ngo/roof/',
      ...extra,
    },
  };
}
