import type { RegistryEvent } from './event.js';

export type EventHandler = (subject: string, event: RegistryEvent) => void | Promise<void>;

/** Carries events to subscribers; `id` lets a bus drop duplicates (JetStream's Nats-Msg-Id). */
export interface EventBus {
  publish(subject: string, event: RegistryEvent): Promise<void>;
  /** `pattern` is a NATS-style subject filter: `*` matches one token, a final `>` the rest. */
  subscribe(pattern: string, handler: EventHandler): () => void;
  close(): Promise<void>;
}

export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
