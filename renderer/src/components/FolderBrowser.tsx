// A small folder browser over 'fs.browse', for transports without native dialogs.
import { useEffect, useRef, useState } from 'react';
import type { FolderListing } from '../../../shared/rpc.js';
import { errorMessage, rpc } from '../rpc/instance.js';

interface Props {
  purpose: 'model' | 'adapter' | 'tokenizer';
  multiple: boolean;
  startDir?: string;
  onPick(paths: string[]): void;
  onClose(): void;
}

export function FolderBrowser({ purpose, multiple, startDir, onPick, onClose }: Props): React.JSX.Element {
  const [listing, setListing] = useState<FolderListing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [chosen, setChosen] = useState<string[]>([]);
  const dialog = useRef<HTMLDivElement>(null);

  const go = async (dir?: string): Promise<void> => {
    setLoading(true);
    try {
      setListing(await rpc().call('fs.browse', dir ? { dir } : {}));
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void go(startDir?.trim() || undefined);
    dialog.current?.focus();
  }, []);

  const wanted = purpose === 'adapter' ? 'adapter' : 'model';
  const toggle = (path: string): void => {
    if (!multiple) {
      onPick([path]);
      return;
    }
    setChosen((c) => (c.includes(path) ? c.filter((p) => p !== path) : [...c, path]));
  };

  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div
        className="modal"
        role="dialog"
        aria-modal="true"
        aria-label={`Choose ${purpose} folder`}
        tabIndex={-1}
        ref={dialog}
        onKeyDown={(e) => e.key === 'Escape' && onClose()}
        data-testid="folder-browser"
      >
        <div className="modal-head">
          <strong>Choose {multiple ? `${purpose} folders` : `a ${purpose} folder`}</strong>
          <button type="button" className="icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </div>
        <div className="browser-path">
          <button type="button" disabled={!listing?.parent || loading} onClick={() => listing?.parent && void go(listing.parent)}>
            ↑ Up
          </button>
          <code title={listing?.dir}>{listing?.dir ?? '…'}</code>
          {listing && purpose !== 'adapter' && (
            <button type="button" onClick={() => onPick([listing.dir])}>
              Use this folder
            </button>
          )}
        </div>
        {error && <p className="error">{error}</p>}
        <ul className="browser-list" aria-busy={loading}>
          {listing?.entries.length === 0 && <li className="muted">No sub-folders.</li>}
          {listing?.entries.map((e) => (
            <li key={e.path} className={e.kind === wanted ? 'pickable' : ''}>
              <button type="button" className="linklike" onClick={() => void go(e.path)} title={`Open ${e.path}`}>
                {e.name}/
              </button>
              {e.kind !== 'folder' && <span className={`tag tag-${e.kind}`}>{e.kind}</span>}
              {(e.kind === wanted || (purpose === 'tokenizer' && e.kind !== 'folder')) && (
                <label className="pick">
                  {multiple ? (
                    <input type="checkbox" checked={chosen.includes(e.path)} onChange={() => toggle(e.path)} />
                  ) : (
                    <button type="button" onClick={() => toggle(e.path)}>
                      Choose
                    </button>
                  )}
                </label>
              )}
            </li>
          ))}
        </ul>
        {multiple && (
          <div className="modal-foot">
            <span className="muted">{chosen.length} chosen</span>
            <button type="button" className="primary" disabled={!chosen.length} onClick={() => onPick(chosen)}>
              Add {chosen.length || ''}
            </button>
          </div>
        )}
      </div>
    </div>
  );
}
