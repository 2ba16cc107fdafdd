import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The N-API addon of native/sha256.c, built by `npm ci` (libs/hashing/scripts/build-native.mjs) when a compiler is there. */
export interface NativeSha256 {
  create(state?: Uint8Array | null): NativeContext;
  update(context: NativeContext, bytes: Uint8Array): void;
  /** The running state in the portable form of saved-hash-state.ts. */
  save(context: NativeContext): Buffer;
  /** The digest of every byte so far; the context goes on. */
  digest(context: NativeContext): Buffer;
}
export type NativeContext = { readonly __nativeSha256: unique symbol };

let loaded: { addon?: NativeSha256; error?: string } | undefined;

/** The addon, or undefined (with the reason in `nativeSha256Error()`) when it was not built or does not load. */
export function nativeSha256(): NativeSha256 | undefined {
  loaded ??= load();
  return loaded.addon;
}

export function nativeSha256Error(): string | undefined {
  loaded ??= load();
  return loaded.error;
}

function load(): { addon?: NativeSha256; error?: string } {
  try {
    const require = createRequire(import.meta.url);
    // node-gyp builds the addon next to binding.gyp (libs/hashing/build/); compiled, this module
    // runs from dist/libs/hashing/ and reaches back to the source tree for it.
    const dir = import.meta.url.endsWith('.js') ? '../../../libs/hashing/' : './';
    const addon = require(fileURLToPath(new URL(`${dir}build/Release/wharf_sha256.node`, import.meta.url))) as NativeSha256;
    // A self-check across a save and resume, so a broken build is never trusted with uploads.
    const bytes = Buffer.from('wharf native sha256 self-check, longer than one 64-byte block of input data');
    const first = addon.create();
    addon.update(first, bytes.subarray(0, 70));
    const second = addon.create(addon.save(first));
    addon.update(second, bytes.subarray(70));
    if (!addon.digest(second).equals(createHash('sha256').update(bytes).digest())) return { error: 'the addon computed a wrong digest' };
    return { addon };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0] };
  }
}
