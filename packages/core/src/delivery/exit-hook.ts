// One process 'beforeExit' listener for every open reporter, so a script that never calls close() still delivers.

/** What a reporter does when the event loop empties: start a bounded flush if it holds events. */
export type ExitWatcher = () => void;

const watchers = new Set<ExitWatcher>();

// A single listener however many reporters are open: one per reporter would trip
// MaxListenersExceededWarning in an app that creates a dozen.
function onBeforeExit(): void {
  for (const watcher of [...watchers]) watcher();
}

/** Starts calling `watcher` whenever the process is about to exit. */
export function watchExit(watcher: ExitWatcher): void {
  if (watchers.size === 0) process.on('beforeExit', onBeforeExit);
  watchers.add(watcher);
}

/** Stops it (on close); the listener goes once no reporter is left. */
export function unwatchExit(watcher: ExitWatcher): void {
  if (watchers.delete(watcher) && watchers.size === 0) process.off('beforeExit', onBeforeExit);
}
