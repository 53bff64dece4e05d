// A path field with a "Browse…" button: the native dialog in Electron, else FolderBrowser,
// which opens where it was last left for this kind of folder and gives focus back to the
// button that opened it.
import { useEffect, useRef, useState } from 'react';
import type { FolderPurpose } from '../../../shared/rpc.js';
import { useApp } from '../store/app.js';
import { useSetup } from '../store/setup.js';
import { errorMessage, rpc } from '../rpc/instance.js';
import { FolderBrowser } from './FolderBrowser.js';

interface Props {
  id: string;
  label: string;
  purpose: FolderPurpose;
  /** Adds several folders at once (adapters); the field then clears after each submit. */
  multiple?: boolean;
  value: string;
  placeholder?: string;
  submitLabel?: string;
  onSubmit(paths: string[]): void;
  testId?: string;
  /** A line under the field (e.g. how relative paths are read). */
  hint?: string;
}

/** The folder a path lives in (the browser opens beside the chosen model, not in it). */
function parentOf(p: string): string {
  const trimmed = p.replace(/[\\/]+$/, '');
  const i = Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf('\\'));
  return i > 0 ? trimmed.slice(0, i) : trimmed;
}

export function FolderField({ id, label, purpose, multiple = false, value, placeholder, submitLabel = 'Set', onSubmit, testId, hint }: Props): React.JSX.Element {
  const native = useApp((s) => s.info?.capabilities.nativeDialogs ?? false);
  const lastDir = useSetup((s) => s.browseDirs[purpose]);
  const setBrowseDir = useSetup((s) => s.setBrowseDir);
  const [text, setText] = useState(value);
  const [browsing, setBrowsing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const opener = useRef<HTMLButtonElement>(null);
  useEffect(() => setText(value), [value]);

  const browse = async (): Promise<void> => {
    if (!native) {
      setBrowsing(true);
      return;
    }
    try {
      const { paths } = await rpc().call('dialog.pickFolders', { purpose, multiple });
      if (paths.length) onSubmit(paths);
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  const close = (): void => {
    setBrowsing(false);
    // Back to the button that opened the dialog (after it unmounts).
    setTimeout(() => opener.current?.focus(), 0);
  };

  return (
    <div className="folder-field">
      <label htmlFor={id}>{label}</label>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          if (text.trim()) onSubmit([text.trim()]);
          if (multiple) setText('');
        }}
      >
        <input id={id} type="text" value={text} placeholder={placeholder} spellCheck={false} onChange={(e) => setText(e.target.value)} data-testid={testId} />
        <button type="submit" disabled={!text.trim()}>
          {submitLabel}
        </button>
        <button type="button" ref={opener} onClick={() => void browse()} data-testid={testId ? `${testId}-browse` : undefined}>
          Browse…
        </button>
      </form>
      {hint && <p className="muted small hint">{hint}</p>}
      {error && <p className="error">{error}</p>}
      {browsing && (
        <FolderBrowser
          purpose={purpose}
          multiple={multiple}
          startDir={lastDir || (value ? parentOf(value) : undefined)}
          onLeave={(dir) => setBrowseDir(purpose, dir)}
          onClose={close}
          onPick={(paths) => {
            close();
            onSubmit(paths);
          }}
        />
      )}
    </div>
  );
}
