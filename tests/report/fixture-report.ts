// The committed fixture report (a real `adapterlens demo --json` run), read through the
// validating reader as any report from disk is.
import path from 'node:path';
import { projectRoot } from '../../main/paths.js';
import { readReportFile } from '../../main/report/read-report.js';
import type { Report } from '../../shared/report.js';

export const FIXTURE_REPORT = path.join(projectRoot, 'tests', 'fixtures', 'reports', 'demo-llama-gqa-bf16.json');

export async function fixtureReport(): Promise<Report> {
  return readReportFile(FIXTURE_REPORT);
}

/** A deep copy to modify in a test. */
export function cloneReport(r: Report): Report {
  return structuredClone(r);
}
