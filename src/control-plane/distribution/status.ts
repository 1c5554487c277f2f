import type { GatewayIdentity } from '../security/types.ts';
import type { ResourceStore } from '../store/types.ts';

/** Records the security module writes at registration (one per gateway, by id). */
export const gatewaysCollection = 'gateways';
/** What distribution learns about each gateway; a separate collection, so the two never race on one record. */
export const gatewayStatusCollection = 'gateway-status';

export interface GatewayStatusRecord {
  /** ISO 8601: the last stream open, heartbeat, config fetch or status report. */
  lastContact: string | null;
  /** A config stream was open at lastContact. */
  streaming: boolean;
  servedVersion: number | null;
  servedHash: string | null;
  planVersion: string | null;
  state: 'serving' | 'rejected' | null;
  /** The version the last rejection was about, and why (null after a served one). */
  rejectedVersion: number | null;
  lastError: string | null;
}

/** What a gateway reports after each snapshot it tried (POST /v1/gateways/self/status). */
export interface StatusReport {
  /** The snapshot version it serves now (after a rejection: still the previous one). */
  servedVersion: number | null;
  /** That snapshot's hash. */
  servedHash?: string | null;
  /** The compiled plan's version (a content hash, as on the gateway's /plan). */
  planVersion: string | null;
  state: 'serving' | 'rejected';
  /** The version this report is about (the rejected one); defaults to servedVersion. */
  version?: number;
  error?: string;
}

const emptyStatus: GatewayStatusRecord = {
  lastContact: null,
  streaming: false,
  servedVersion: null,
  servedHash: null,
  planVersion: null,
  state: null,
  rejectedVersion: null,
  lastError: null,
};

const maxErrorChars = 16_384;

/** Checks a report's shape; returns the problem in words, or the report. */
export function parseStatusReport(body: unknown): StatusReport | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'the body must be a JSON object';
  const b = body as Record<string, unknown>;
  const version = (v: unknown) => v === null || (Number.isSafeInteger(v) && (v as number) >= 0);
  if (!version(b.servedVersion)) return 'servedVersion must be a non-negative integer or null';
  if (b.servedHash !== undefined && b.servedHash !== null && typeof b.servedHash !== 'string')
    return 'servedHash must be a string or null';
  if (b.planVersion !== null && typeof b.planVersion !== 'string')
    return 'planVersion must be a string or null';
  if (b.state !== 'serving' && b.state !== 'rejected') return 'state must be serving or rejected';
  if (b.version !== undefined && (b.version === null || !version(b.version)))
    return 'version must be a non-negative integer';
  if (b.error !== undefined && typeof b.error !== 'string') return 'error must be a string';
  for (const k of Object.keys(b))
    if (!['servedVersion', 'servedHash', 'planVersion', 'state', 'version', 'error'].includes(k))
      return `unknown field ${k}`;
  return b as unknown as StatusReport;
}

export function updateStatus(
  store: ResourceStore,
  id: string,
  change: (current: GatewayStatusRecord) => Partial<GatewayStatusRecord>,
): Promise<GatewayStatusRecord | null> {
  return store.recordUpdate<GatewayStatusRecord>(gatewayStatusCollection, id, (current) => {
    const base = { ...emptyStatus, ...(current ?? {}) };
    return { ...base, ...change(base) };
  });
}

export function applyReport(report: StatusReport, at: string): Partial<GatewayStatusRecord> {
  const fields: Partial<GatewayStatusRecord> = {
    lastContact: at,
    servedVersion: report.servedVersion,
    servedHash: report.servedHash ?? null,
    planVersion: report.planVersion,
    state: report.state,
  };
  if (report.state === 'serving') {
    fields.rejectedVersion = null;
    fields.lastError = null;
  } else {
    fields.rejectedVersion = report.version ?? report.servedVersion;
    fields.lastError = (report.error ?? 'rejected').slice(0, maxErrorChars);
  }
  return fields;
}

export function readStatus(value: GatewayStatusRecord | null): GatewayStatusRecord {
  return { ...emptyStatus, ...(value ?? {}) };
}

/**
 * A registration record as the security module keeps it, read tolerantly: only the identity
 * fields matter here; the record's id is the gateway's id.
 */
export function identityFromRecord(id: string, value: unknown): GatewayIdentity | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.name !== 'string' || typeof v.namespace !== 'string') return null;
  const labels =
    typeof v.labels === 'object' && v.labels !== null ? (v.labels as Record<string, string>) : {};
  return { id, name: v.name, namespace: v.namespace, labels };
}
