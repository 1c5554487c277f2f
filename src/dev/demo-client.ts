// What the demo identity provider of `gatehouse dev` and `gatehouse token` agree on. Fixed values on
// purpose, so the quickstart's config and curl lines can name them: they protect nothing and must
// never be used outside a local demo.

/** Where `gatehouse dev` serves the demo identity provider by default (loopback only). */
export const demoIdpPort = 7002;

/** The one OAuth client of the demo identity provider (client_credentials). DEMO ONLY. */
export const demoClient = Object.freeze({
  id: 'gatehouse-demo',
  secret: 'demo-only-not-a-secret',
});

/**
 * The resource indicator (RFC 8707) demo tokens are asked for, and so their `aud`: with it the
 * provider issues JWT access tokens (RFC 9068) rather than opaque ones.
 */
export const demoAudience = 'urn:gatehouse:demo-api';

/** Scopes the demo client may ask for. */
export const demoScopes: readonly string[] = Object.freeze(['demo.read', 'demo.write']);
