// A small folder browser over 'fs.browse', for transports without native dialogs: a path
// field to type or paste into (~ and relative paths welcome), the sub-folders marked as
// model / adapter, and a modal that keeps Tab inside it until it closes.
import { useEffect, useRef, useState } from 'react';
import type { FolderListing, FolderPurpose } from '../../../shared/rpc.js';
import { nextFocus } from '../logic/focus-trap.js';
import { errorMessage, rpc } from '../rpc/instance.js';

interface Props {
  purpose: FolderPurpose;
  multiple: boolean;
  startDir?: string;
  onPick(paths: string[]): void;
  onClose(): void;
  /** Called with every folder the browser shows, so the next one opens there. */
  onLeave?(dir: string): void;
}

const FOCUSABLE = 'button:not([disabled]), input:not([disabled]), select:not([disabled]), [href], [tabindex]:not([tabindex="-1"])';

export function FolderBrowser({ purpose, multiple, startDir, onPick, onClose, onLeave }: Props): React.JSX.Element {
  const [listing, setListing] = useState<FolderListing | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [chosen, setChosen] = useState<string[]>([]);
  const [pathText, setPathText] = useState(startDir ?? '');
  const dialog = useRef<HTMLDivElement>(null);
  const pathInput = useRef<HTMLInputElement>(null);
  const leave = useRef(onLeave);
  leave.current = onLeave;

  const go = async (dir?: string): Promise<void> => {
    setLoading(true);
    try {
      const l = await rpc().call('fs.browse', dir ? { dir } : {});
      setListing(l);
      setPathText(l.dir);
      setError(null);
      leave.current?.(l.dir);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void go(startDir?.trim() || undefined);
    pathInput.current?.focus();
  }, []);

  // Opening a sub-folder replaces the list, and the button that had focus goes with it:
  // focus would fall to the page behind the modal, out of the Tab trap. The path field takes it.
  useEffect(() => {
    if (dialog.current && !dialog.current.contains(document.activeElement)) pathInput.current?.focus();
  }, [listing]);

  const wanted = purpose === 'adapter' ? 'adapter' : 'model';
  const toggle = (path: string): void => {
    if (!multiple) {
      onPick([path]);
      return;
    }
    setChosen((c) => (c.includes(path) ? c.filter((p) => p !== path) : [...c, path]));
  };

  const onKeyDown = (e: React.KeyboardEvent): void => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
      return;
    }
    if (e.key !== 'Tab' || !dialog.current) return;
    // Keep Tab inside the dialog: from the last control to the first, and back.
    const items = [...dialog.current.querySelectorAll<HTMLElement>(FOCUSABLE)];
    const next = nextFocus(items, document.activeElement as HTMLElement | null, e.shiftKey);
    if (next) {
      e.preventDefault();
      next.focus();
    }
  };

  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="modal" role="dialog" aria-modal="true" aria-label={`Choose ${purpose} folder`} tabIndex={-1} ref={dialog} onKeyDown={onKeyDown} data-testid="folder-browser">
        <div className="modal-head">
          <strong>Choose {multiple ? `${purpose} folders` : `a ${purpose} folder`}</strong>
          <button type="button" className="icon" onClick={onClose} aria-label="Close">
            ×
          </button>
        </div>
        <form
          className="browser-path"
          onSubmit={(e) => {
            e.preventDefault();
            if (pathText.trim()) void go(pathText.trim());
          }}
        >
          <button type="button" disabled={!listing?.parent || loading} onClick={() => listing?.parent && void go(listing.parent)} aria-label="Up one folder">
            ↑ Up
          </button>
          <input ref={pathInput} type="text" aria-label="Folder path" value={pathText} onChange={(e) => setPathText(e.target.value)} spellCheck={false} data-testid="browser-path" />
          <button type="submit" disabled={!pathText.trim() || loading}>
            Go
          </button>
          {listing && purpose !== 'adapter' && (
            <button type="button" onClick={() => onPick([listing.dir])}>
              Use this folder
            </button>
          )}
        </form>
        {error && <p className="error">{error}</p>}
        <ul className="browser-list" aria-busy={loading} aria-label={listing ? `Folders in ${listing.dir}` : 'Folders'} data-testid="browser-list">
          {listing?.entries.length === 0 && <li className="muted">No sub-folders.</li>}
          {listing?.entries.map((e) => (
            <li key={e.path} className={e.kind === wanted ? 'pickable' : ''}>
              <button type="button" className="linklike folder-name" onClick={() => void go(e.path)} title={`Open ${e.path}`}>
                <span className="folder-icon" aria-hidden="true" />
                {e.name}
              </button>
              {e.kind !== 'folder' && <span className={`tag tag-${e.kind}`}>{e.kind}</span>}
              {(e.kind === wanted || (purpose === 'tokenizer' && e.kind !== 'folder')) && (
                <label className="pick">
                  {multiple ? (
                    <input type="checkbox" checked={chosen.includes(e.path)} onChange={() => toggle(e.path)} aria-label={`Choose ${e.name}`} />
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
        <div className="modal-foot">
          {multiple && <span className="muted">{chosen.length} chosen</span>}
          <button type="button" onClick={onClose} data-testid="browser-cancel">
            Cancel
          </button>
          {multiple && (
            <button type="button" className="primary" disabled={!chosen.length} onClick={() => onPick(chosen)}>
              Add {chosen.length || ''}
            </button>
          )}
        </div>
      </div>
    </div>
  );
}
