import type { ChatMessage } from "@caas/sdk";

import { useText } from "../i18n/index.js";
import { Composer, type ComposerProps } from "./Composer.js";
import { MessageItem } from "./MessageItem.js";
import { MessageList, type MessageListProps } from "./MessageList.js";
import { cx, Icon } from "./util.js";

export interface ThreadViewProps extends Omit<MessageListProps, "header" | "showThread" | "label"> {
  /** The thread's first message. */
  root: ChatMessage;
  onClose?(): void;
  /** The reply composer (omit for a read-only thread). */
  composer?: Omit<ComposerProps, "thread">;
}

/** A thread: its root message, the replies (a MessageList) and a reply composer. */
export function ThreadView({ root, onClose, composer, className, ...list }: ThreadViewProps) {
  const t = useText();
  const user = list.userOf?.(root.message.senderId);
  const count = Math.max(root.message.replyCount, list.items.length);
  return (
    <section className={cx("caas-thread", className)} aria-label={t("thread.label")}>
      <header className="caas-pane-header">
        <Icon name="thread" />
        <h2 className="caas-pane-title">{t("thread.label")}</h2>
        {onClose && (
          <button type="button" className="caas-icon-button" aria-label={t("thread.close")} title={t("thread.close")} onClick={onClose}>
            <Icon name="close" />
          </button>
        )}
      </header>
      <MessageList
        {...list}
        label={t("thread.label")}
        showThread={false}
        header={
          <div className="caas-thread-root">
            <MessageItem
              item={root}
              me={list.me}
              senderName={user?.name ?? root.message.senderId}
              senderImage={user?.imageUri}
              showThread={false}
              onToggleReaction={list.onToggleReaction}
              onEdit={list.onEdit}
              onDelete={list.onDelete}
            />
            <div className="caas-day caas-thread-count-divider">
              <span>{t("thread.replies", { count })}</span>
            </div>
          </div>
        }
        empty={null}
      />
      {composer && <Composer {...composer} thread />}
    </section>
  );
}
