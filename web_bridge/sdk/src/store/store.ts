/**
 * A chat state container: `dispatch` runs the reducer, listeners hear of each change.
 * `subscribe` and `getState` have the shapes React's `useSyncExternalStore` wants.
 */
import { reduce, type ChatAction } from "./reducer.js";
import { emptyState, type ChatState } from "./state.js";

export class ChatStore {
  private state: ChatState;
  private readonly listeners = new Set<() => void>();

  constructor(me: string, initial?: ChatState) {
    this.state = initial ?? emptyState(me);
  }

  readonly getState = (): ChatState => this.state;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  dispatch(action: ChatAction): void {
    const next = reduce(this.state, action);
    if (next === this.state) return;
    this.state = next;
    for (const listener of [...this.listeners]) listener();
  }
}
