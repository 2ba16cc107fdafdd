/** Throwaway PostgreSQL databases for the benchmarks that seed their data in SQL. */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { type Database, migrate, openDatabase } from '../libs/metadata/index.js';

const ADMIN_URL = process.env.WHARF_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface ScratchDatabase {
  name: string;
  url: string;
  /** A small pool on it, migrated; the caller closes it. */
  database: Database;
}

/** A new database named `<prefix>_<random>`, with the schema. */
export async function createScratchDatabase(prefix: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomBytes(3).toString('hex')}`;
  const admin = openDatabase({ url: ADMIN_URL, poolSize: 1, uploadPoolSize: 1 });
  await sql.raw(`create database ${name}`).execute(admin.db);
  await admin.close();
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  const url = u.toString();
  const database = openDatabase({ url, poolSize: 2, uploadPoolSize: 1 });
  try {
    await migrate(database.db);
  } catch (err) {
    await database.close();
    throw err;
  }
  return { name, url, database };
}

export async function dropScratchDatabase(name: string): Promise<void> {
  const admin = openDatabase({ url: ADMIN_URL, poolSize: 1, uploadPoolSize: 1 });
  try {
    await sql.raw(`drop database if exists ${name} with (force)`).execute(admin.db);
  } finally {
    await admin.close();
  }
}
