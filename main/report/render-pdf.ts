// The PDF report: the HTML report printed by a Chromium. Which Chromium is pluggable:
// the desktop app injects Electron's webContents.printToPDF; everywhere else the
// default prints through a headless Chromium driven by playwright-core. Where neither
// exists, PdfUnavailableError says what to install (the HTML prints from any browser).
import fs from 'node:fs';

/** Renders a self-contained HTML document to PDF bytes (same shape as main/rpc's PdfPrinter). */
export type PdfPrinter = (html: string) => Promise<Uint8Array>;

/** No Chromium to print with. */
export class PdfUnavailableError extends Error {
  override readonly name = 'PdfUnavailableError';
}

/** Where Chromium usually is: $ADAPTERLENS_CHROMIUM first, then the distributions' paths. */
export const CHROMIUM_CANDIDATES: readonly string[] = [
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
  '/usr/bin/google-chrome-stable',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe',
];

/** The first Chromium executable that exists, or null. */
export function findChromium(candidates: readonly string[] = CHROMIUM_CANDIDATES, env: NodeJS.ProcessEnv = process.env): string | null {
  const fromEnv = env.ADAPTERLENS_CHROMIUM;
  for (const p of fromEnv ? [fromEnv, ...candidates] : candidates) if (fs.existsSync(p)) return p;
  return null;
}

export function pdfUnavailableMessage(): string {
  return (
    'PDF export needs Chromium, and none was found ' +
    `(looked at $ADAPTERLENS_CHROMIUM and ${CHROMIUM_CANDIDATES.slice(0, 4).join(', ')}). ` +
    'Install Chromium (e.g. `apt install chromium`) or set ADAPTERLENS_CHROMIUM to a Chrome/Chromium executable, ' +
    'export from the desktop app, or write --html and print it to PDF from any browser.'
  );
}

/**
 * A printer that runs a headless Chromium per call (playwright-core, loaded only here so
 * the app never bundles it). Every network request is refused: the report needs none.
 */
export function chromiumPrinter(executablePath?: string): PdfPrinter {
  return async (html) => {
    const exe = executablePath ?? findChromium();
    if (!exe || !fs.existsSync(exe)) throw new PdfUnavailableError(pdfUnavailableMessage());
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: exe, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
      const context = await browser.newContext({ offline: true, javaScriptEnabled: false });
      const page = await context.newPage();
      await page.route('**/*', (route) => route.abort());
      await page.setContent(html, { waitUntil: 'load' });
      return await page.pdf({ format: 'A4', printBackground: true, margin: { top: '12mm', bottom: '12mm', left: '10mm', right: '10mm' } });
    } finally {
      await browser.close();
    }
  };
}

/** The report's HTML as PDF, with the given printer or the headless-Chromium default. */
export async function renderPdf(html: string, printer: PdfPrinter = chromiumPrinter()): Promise<Uint8Array> {
  const pdf = await printer(html);
  // A printer that returns something other than a PDF is a bug worth a clear message.
  if (pdf.length < 5 || Buffer.from(pdf.subarray(0, 5)).toString('latin1') !== '%PDF-') throw new Error('the PDF printer returned something that is not a PDF');
  return pdf;
}
