// Seeded pseudo-random numbers for reproducible fault fractions, and unguessable ids for Stripe objects.
import { randomBytes } from 'node:crypto';

/**
 * mulberry32: tiny, fast and good enough to spread fault draws; a crypto generator would make
 * fault patterns impossible to replay from a seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a base seed with a sequence number so that each fault draws from its own stream. */
export function deriveSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// Ids are minted for every accepted event without an identifier, so draw entropy in blocks.
let pool = Buffer.alloc(0);
let poolOffset = 0;

/** A Stripe-style id: prefix plus `length` random alphanumerics. */
export function randomId(prefix: string, length = 24): string {
  if (poolOffset + length > pool.length) {
    pool = randomBytes(4096);
    poolOffset = 0;
  }
  let out = prefix;
  for (let i = 0; i < length; i++) out += ALPHABET[pool[poolOffset++]! % ALPHABET.length];
  return out;
}
