/**
 * Signed images (ADR 001): the gate a service, or a core container, passes before anything of it
 * is created.
 *
 *   reference.ts  image names, registries, mirrors            (pure)
 *   registry.ts   the OCI distribution client                 (adapter: HTTP)
 *   legacy.ts     cosign's `.sig` simple-signing format       (pure)
 *   bundle.ts     sigstore bundle v0.3, DSSE + in-toto        (pure)
 *   verify.ts     find and check the signatures of one image  (through the client)
 *   verifier.ts   the cache and the clients of one operator
 *   policy.ts     off | warn | enforce                        (pure)
 *   pull.ts       pull by digest, RepoDigests check           (adapter: Docker)
 *   gate.ts       verifyServiceImages, for the service reconcile; verifyImages, for the core stack
 */
export { ImageVerifier, templateImages } from './verifier.js';
export { ServiceImages, verifyImages, verifyServiceImages, type GateRefusal, type ImageGateHost, type ImageGateInput, type ServiceGateInput } from './gate.js';
export { describeVerification, type ImageFact, type VerificationFacts } from './facts.js';
export { verifyImage } from './verify.js';
export type { Verdict, Verified, Refused, RefusalReason, SignatureFormat } from './verdict.js';
