// A path field with a "Browse…" button: the native dialog in Electron, else FolderBrowser.
import { useEffect, useState } from 'react';
import { useApp } from '../store/app.js';
import { errorMessage, rpc } from '../rpc/instance.js';
import { FolderBrowser } from './FolderBrowser.js';

interface Props {
  id: string;
  label: string;
  purpose: 'model' | 'adapter' | 'tokenizer';
  /** Adds several folders at once (adapters); the field then clears after each submit. */
  multiple?: boolean;
  value: string;
  placeholder?: string;
  submitLabel?: string;
  onSubmit(paths: string[]): void;
  testId?: string;
}

export function FolderField({ id, label, purpose, multiple = false, value, placeholder, submitLabel = 'Set', onSubmit, testId }: Props): React.JSX.Element {
  const native = useApp((s) => s.info?.capabilities.nativeDialogs ?? false);
  const [text, setText] = useState(value);
  const [browsing, setBrowsing] = useState(false);
  const [error, setError] = useState<string | null>(null);
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
        <button type="button" onClick={() => void browse()}>
          Browse…
        </button>
      </form>
      {error && <p className="error">{error}</p>}
      {browsing && (
        <FolderBrowser
          purpose={purpose}
          multiple={multiple}
          startDir={value || undefined}
          onClose={() => setBrowsing(false)}
          onPick={(paths) => {
            setBrowsing(false);
            onSubmit(paths);
          }}
        />
      )}
    </div>
  );
}
