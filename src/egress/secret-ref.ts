import Type from 'typebox';

/** A secret in config: the name of the environment variable holding it, never the value. */
export function SecretRefSchema(description: string) {
  return Type.Object(
    {
      env: Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        description: 'Name of the environment variable holding the secret.',
      }),
    },
    { additionalProperties: false, description: `${description} Read when the config is loaded.` },
  );
}

/** Visible ASCII and spaces: what a header value may carry as it is. */
export const headerSafe = /^[\x20-\x7e]+$/;
