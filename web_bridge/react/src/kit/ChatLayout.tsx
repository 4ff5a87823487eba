import type { ReactNode } from "react";

import { useText } from "../i18n/index.js";
import { cx } from "./util.js";

export interface ChatLayoutProps {
  /** The conversation list (and whatever goes above it). */
  list: ReactNode;
  /** The open conversation: header, messages, typing, composer. */
  children?: ReactNode;
  /** A side panel, e.g. a ThreadView. */
  thread?: ReactNode;
  /**
   * What a narrow layout (under 640 px wide, by container query) shows, one at a time.
   * Default: the thread if any, else the conversation if any, else the list.
   */
  view?: "list" | "conversation" | "thread";
  className?: string;
}

/** List, conversation and thread side by side; stacked (one at a time) when narrow. */
export function ChatLayout({ list, children, thread, view, className }: ChatLayoutProps) {
  const t = useText();
  const shown = view ?? (thread ? "thread" : children ? "conversation" : "list");
  return (
    <div className={cx("caas-layout", className)}>
      <div className="caas-layout-grid" data-view={shown} data-thread={thread ? "" : undefined}>
        <nav className="caas-layout-list" aria-label={t("list.label")}>
          {list}
        </nav>
        <div className="caas-layout-main">{children}</div>
        {thread && <div className="caas-layout-thread">{thread}</div>}
      </div>
    </div>
  );
}
