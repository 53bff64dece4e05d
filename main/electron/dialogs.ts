// The platform hooks only Electron has (AppService's PlatformHooks): native folder
// pickers, a save dialog that writes an export, and Chromium's PDF printer.
import { BrowserWindow, dialog } from 'electron';
import type { PlatformHooks } from '../rpc/service.js';
import { writeFileAtomic } from '../files/atomic-write.js';

const TITLES = { model: 'Choose the base model folder', adapter: 'Choose LoRA adapter folders', tokenizer: 'Choose the tokenizer folder' } as const;

const FILTERS: Record<string, Electron.FileFilter> = {
  json: { name: 'JSON report', extensions: ['json'] },
  html: { name: 'HTML report', extensions: ['html'] },
  md: { name: 'Markdown report', extensions: ['md'] },
  csv: { name: 'CSV', extensions: ['csv'] },
  pdf: { name: 'PDF report', extensions: ['pdf'] },
};

/** Renders HTML to PDF in a hidden, script-less window (the report is self-contained). */
async function printPdf(html: string): Promise<Uint8Array> {
  const win = new BrowserWindow({
    show: false,
    webPreferences: { sandbox: true, contextIsolation: true, nodeIntegration: false, javascript: false },
  });
  try {
    await win.loadURL(`data:text/html;charset=utf-8;base64,${Buffer.from(html, 'utf8').toString('base64')}`);
    return await win.webContents.printToPDF({ printBackground: true, pageSize: 'A4' });
  } finally {
    win.destroy();
  }
}

export function electronPlatform(parent: () => BrowserWindow | null): PlatformHooks {
  return {
    async pickFolders(purpose, multiple) {
      const options: Electron.OpenDialogOptions = {
        title: TITLES[purpose],
        properties: multiple ? ['openDirectory', 'multiSelections'] : ['openDirectory'],
      };
      const win = parent();
      const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return result.canceled ? [] : result.filePaths;
    },
    async saveFile(file) {
      const ext = file.fileName.split('.').pop() ?? '';
      const options: Electron.SaveDialogOptions = { defaultPath: file.fileName, filters: FILTERS[ext] ? [FILTERS[ext]] : [] };
      const win = parent();
      const result = win ? await dialog.showSaveDialog(win, options) : await dialog.showSaveDialog(options);
      if (result.canceled || !result.filePath) return null;
      await writeFileAtomic(result.filePath, file.encoding === 'base64' ? Buffer.from(file.content, 'base64') : file.content);
      return result.filePath;
    },
    printPdf,
  };
}
