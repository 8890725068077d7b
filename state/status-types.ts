/** Status the operator keeps for each document, in the state directory (never in the cell folder). */

export type ConditionType = 'Ready' | 'Reconciling' | 'Stalled';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  /** CamelCase, machine-readable: InstallSucceeded, InvalidSpec, ContainerNotRunning, ... */
  reason: string;
  /** One sentence a person can act on. */
  message: string;
  /** ISO time when `status` last changed (not when the message did). */
  lastTransitionTime: string;
}

export type Phase = 'Pending' | 'Reconciling' | 'Ready' | 'Stalled' | 'Failed' | 'Removed';

export interface ContainerFact {
  name: string;
  id?: string;
  state: string;
  health?: string;
  image?: string;
}

export interface DocumentStatus {
  /** "Kind/name" */
  key: string;
  kind: string;
  name: string;
  /** Hash of the document's spec: which version of the document this status speaks of. */
  observedGeneration: string;
  phase: Phase;
  /** Ready always; Reconciling and Stalled only while True (kstatus). */
  conditions: Condition[];
  /** Where the document came from. */
  file?: string;
  /** Kind-specific facts: serviceIp, containers, image digests, routes, provisioned services, notices. */
  facts?: {
    serviceIp?: string;
    containers?: ContainerFact[];
    images?: { container: string; reference: string; id?: string; verified?: boolean | 'skipped' }[];
    notices?: string[];
    [key: string]: unknown;
  };
  /** ISO time of the last write of this status. */
  updatedAt: string;
}

export interface OperatorEvent {
  time: string;
  /** "Kind/name" of the document it concerns, or a shared resource key (caddy, dns, ...). */
  key: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
