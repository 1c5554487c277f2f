import type { IdentityProviderSpec } from '../config/schemas/identity-provider.ts';

/** Claims of a verified token. */
export type Claims = Readonly<Record<string, unknown>>;

/** Result of checking a credential: verified claims, or why not (reason is safe to log, never the token). */
export type CredentialCheck =
  | { readonly ok: true; readonly claims: Claims; readonly expiresAt: number | null }
  | {
      readonly ok: false;
      /** invalid: the credential is bad (401). unavailable: we could not check it (503, fail closed). */
      readonly kind: 'invalid' | 'unavailable';
      readonly reason: string;
    };

/** Verifies JWTs of one identity provider against its key set (see jwt-verifier.ts). */
export interface JwtVerifier {
  /**
   * Starts keeping the key set (background fetches, when ProviderDeps.start): called by every `jwt`
   * policy compiled against the provider, so a provider used only for introspection fetches nothing.
   * Idempotent. Throws TypeError when the spec gives no usable key set location.
   */
  activate(): void;
  /** False only while an activated verifier has no usable keys (readiness waits for them). */
  ready(): boolean;
  /** Sync on a verified-token cache hit; a promise otherwise. */
  verify(token: string): CredentialCheck | Promise<CredentialCheck>;
  /** The answer for a token verified before and still cached, without any other work; else undefined. */
  cached(token: string): CredentialCheck | undefined;
  close(): void;
}

/** RFC 7662 introspection client of one identity provider (see introspection.ts). */
export interface Introspector {
  introspect(token: string): CredentialCheck | Promise<CredentialCheck>;
  close(): void;
}

/** What services of the gateway process an identity provider gets. */
export interface ProviderDeps {
  readonly now: () => number;
  /** Start background work (key-set fetches). False for offline compiles: validate, explain. */
  readonly start: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string) => void;
}

/** One IdentityProvider resource made live: outlives plans while its spec does not change. */
export interface ProviderRuntime {
  readonly id: string;
  readonly spec: IdentityProviderSpec;
  readonly jwt: JwtVerifier;
  readonly introspector: Introspector | null;
}
