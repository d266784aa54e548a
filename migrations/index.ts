import type { Migration } from 'kysely';
import * as m001 from './001_storage_tables.js';
import * as m002 from './002_schemas_and_audit.js';
import * as m003 from './003_install_write_sequence.js';
import * as m004 from './004_install_bytes.js';
import * as m005 from './005_write_function.js';
import * as m006 from './006_write_batch.js';
import * as m007 from './007_write_set_based.js';
import * as m008 from './008_commit_and_counters.js';
import * as m009 from './009_change_feed.js';
import * as m010 from './010_merged_batches.js';
import * as m011 from './011_lean_single_writes.js';

/** Every migration, in order. Names are recorded in kysely_migration; never rename one. */
export const migrations: Record<string, Migration> = {
  '001_storage_tables': m001,
  '002_schemas_and_audit': m002,
  '003_install_write_sequence': m003,
  '004_install_bytes': m004,
  '005_write_function': m005,
  '006_write_batch': m006,
  '007_write_set_based': m007,
  '008_commit_and_counters': m008,
  '009_change_feed': m009,
  '010_merged_batches': m010,
  '011_lean_single_writes': m011,
};
