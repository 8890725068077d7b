/**
 * The model of the Compose subset pic supports: typed services, mounts, ports, networks and
 * volumes, each carrying the JSON pointer of where it was written, and the small helpers the
 * reader (read-compose.ts), the policy (policy.ts) and the translator (translate.ts) share. Pure.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import { pointerOf } from '../../crds/json-pointer.js';
import { CONTAINER_NAME_PATTERN as CONTAINER_NAME_SOURCE } from '../../crds/schemas.js';
import type { Problem } from '../../crds/types.js';
import { compareText } from '../../crds/values.js';
import type { DependsOnCondition } from './types.js';

/** A rendered compose document, not yet checked: any shape may come out of a template. */
export type ComposeFile = Record<string, unknown>;


export const CONTAINER_NAME_PATTERN = new RegExp(CONTAINER_NAME_SOURCE);
/** Docker's own rule for volume names. */
export const DOCKER_VOLUME_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Compose's rule for service, volume and network keys. */
export const COMPOSE_KEY_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

// ---------------------------------------------------------------------------------------------
// Small helpers

/** The pointer of `segments` below `base`. */
export function ptr(base: string, ...segments: (string | number)[]): string {
  return `${base}${pointerOf(...segments)}`;
}

export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

export function sortedRecord<V>(entries: Iterable<[string, V]>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [k, v] of [...entries].sort((a, b) => compareText(a[0], b[0]))) setOwn(out, k, v);
  return out;
}


export class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly file: string) {}
  add(pointer: string, message: string): void {
    this.list.push({ file: this.file, pointer, message });
  }
}

/** A scalar Compose would accept as text (numbers and booleans are written out). */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/** Rendered values are text, so numeric and boolean fields accept their textual form too. */
export function asBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
}

export function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(value)) return Number(value);
  return undefined;
}

export function asInteger(value: unknown): number | undefined {
  const n = asNumber(value);
  return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------------
// The model of the supported subset

export type MountModel =
  | { type: 'volume'; volume: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'bind'; source: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'tmpfs'; target: string; readOnly: boolean; sizeBytes?: number; pointer: string };

export interface PortModel {
  containerPort: number;
  /** Where the entry was written. */
  pointer: string;
  protocol: string;
  hostIp: string;
  hostPort: string;
}

export interface DependencyModel {
  service: string;
  condition: DependsOnCondition;
  pointer: string;
}

export interface ServiceModel {
  key: string;
  pointer: string;
  imagePointer: string;
  image?: string;
  containerName?: string;
  command?: string[];
  entrypoint?: string[];
  environment: Map<string, string>;
  mounts: MountModel[];
  ipv4Address?: Setting<string>;
  aliases: Setting<string>[];
  restart?: { Name: string; MaximumRetryCount?: number };
  labels: Map<string, string>;
  dependsOn: DependencyModel[];
  healthcheck?: Dockerode.HealthConfig;
  ports: PortModel[];
  /** Capability names, upper case without CAP_, each with its pointer. */
  capAdd: Setting<string>[];
  /** `devices:` entries as host path → container path (only a connectivity service's grant passes the policy). */
  devices: (Setting<string> & { target: string })[];
  /** `sysctls:` as name → value, each with its pointer (only a connectivity service's grant passes the policy). */
  sysctls: (Setting<string> & { name: string })[];
  securityOpt: Setting<string>[];
  /** The networks the service names (list or mapping keys). */
  networkRefs: Setting<string>[];
  /** Settings that only the policy may allow, as written (absent when not written or null). */
  confinement: {
    privileged?: Setting;
    networkMode?: Setting;
    pid?: Setting;
    ipc?: Setting;
    usernsMode?: Setting;
    devices?: Setting;
  };
  workingDir?: string;
  user?: string;
  hostname?: string;
  /** Seconds, from `stop_grace_period`, with where it was written. */
  stopTimeout?: Setting<number>;
  stopSignal?: string;
  /** `tmpfs:` entries: a target and its mount options as written ("" for none). */
  tmpfs: { target: string; options: string; pointer: string }[];
  readOnly?: boolean;
  memory?: number;
  nanoCpus?: number;
}

export interface VolumeModel {
  key: string;
  name?: string;
  labels: Map<string, string>;
  pointer: string;
}

/** A top-level network declaration. */
export interface NetworkModel {
  key: string;
  /** `name:` when given, else the key. */
  name: string;
  external: boolean;
  pointer: string;
}

/** A raw setting the policy decides on, with where it was written. */
export interface Setting<T = unknown> {
  value: T;
  pointer: string;
}

export interface ComposeModel {
  services: ServiceModel[];
  volumes: VolumeModel[];
  networks: NetworkModel[];
}

export function normaliseHostPath(source: string): string {
  return path.posix.normalize(source).replace(/(.)\/+$/, '$1');
}
