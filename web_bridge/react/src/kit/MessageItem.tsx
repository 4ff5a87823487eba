import { memo, useState } from "react";
import type { Attachment, ChatMessage } from "@caas/sdk";

import { useLocale, type Locale } from "../i18n/index.js";
import { Avatar } from "./Avatar.js";
import { EmojiPicker } from "./EmojiPicker.js";
import { QUICK_REACTIONS } from "./emoji.js";
import { MenuItem, PopoverButton } from "./Menu.js";
import { cx, dateOf, Icon, safeImageUrl, safeUrl, segmentsOf, SrOnly } from "./util.js";

/** Where an own message stands: from its status, then from the other members' receipts. */
export type Delivery = "pending" | "failed" | "sent" | "delivered" | "read";

/** What the user can do with messages; each is offered only when given. */
export interface MessageHandlers {
  onRetry?(item: ChatMessage): void;
  onDiscard?(item: ChatMessage): void;
  onToggleReaction?(item: ChatMessage, emoji: string): void;
  onOpenThread?(item: ChatMessage): void;
  onEdit?(item: ChatMessage): void;
  onDelete?(item: ChatMessage): void;
}

export interface MessageItemProps extends MessageHandlers {
  item: ChatMessage;
  /** The signed-in user's id. */
  me: string;
  senderName: string;
  senderImage?: string;
  /** First of a group: shows the avatar and the name (default true). */
  showHeader?: boolean;
  /** For an own sent message: "sent", "delivered" or "read" (see `deliveryOf`). */
  delivery?: Delivery;
  /** Shows the replies footer and the reply action (false inside a thread). */
  showThread?: boolean;
  highlighted?: boolean;
  className?: string;
}

const DELETED = 2;
const IMAGE = 1, VIDEO = 2, AUDIO = 3, LINK = 5;
const JUMBO = /^(?:\p{Extended_Pictographic}(?:\uFE0F|\u200D\p{Extended_Pictographic}|\p{Emoji_Modifier})*\s*){1,3}$/u;

function Text({ text, mentions, me }: { text: string; mentions: ChatMessage["message"]["mentions"]; me: string }) {
  return (
    <div className={cx("caas-message-text", JUMBO.test(text) && "caas-message-text--jumbo")} dir="auto">
      {segmentsOf(text, mentions).map((s, i) =>
        s.href ? (
          <a key={i} href={s.href} target="_blank" rel="noopener noreferrer">
            {s.text}
          </a>
        ) : s.mention ? (
          <span key={i} className={cx("caas-mention", s.mention === me && "caas-mention--me")}>
            {s.text}
          </span>
        ) : (
          s.text
        ),
      )}
    </div>
  );
}

/** Fits width × height in a 260 × 260 box (a placeholder before the picture loads). */
// Call outcomes and media (caas.calls.v1.Call): numbers, as the SDK's enums are.
const CALL_VIDEO = 2;
const CALL_OUTCOMES: Record<number, "completed" | "missed" | "declined" | "busy" | "canceled"> = {
  1: "completed", 2: "missed", 3: "declined", 4: "busy", 5: "canceled",
};

/** An ended call, as its record message shows it: how it went, and for how long (a
 * call nobody answered is "missed" for the others, "no answer" for its caller). */
function CallRecord({ call, own, loc }: { call: NonNullable<ChatMessage["message"]["call"]>; own: boolean; loc: Locale }) {
  const video = call.media === CALL_VIDEO;
  const outcome = CALL_OUTCOMES[call.outcome] ?? "completed";
  const shown = outcome === "missed" && own ? "unanswered" : outcome;
  const key = `call.${shown}.${video ? "video" : "voice"}` as const;
  const total = Number(call.duration?.seconds ?? 0n);
  const duration = outcome === "completed" && total > 0
    ? loc.t("call.duration", { minutes: loc.number(Math.floor(total / 60)), seconds: String(total % 60).padStart(2, "0") })
    : "";
  return (
    <div className={cx("caas-message-call", shown === "missed" && "caas-message-call--missed")} role="note">
      <Icon name={video ? "video" : "phone"} size={16} />
      <span>{loc.t(key)}</span>
      {duration && <span className="caas-message-call-duration">{duration}</span>}
    </div>
  );
}

function box(a: Attachment) {
  if (!a.width || !a.height) return { width: 240, aspectRatio: "4 / 3" };
  const scale = Math.min(1, 260 / a.width, 260 / a.height);
  return { width: Math.max(48, Math.round(a.width * scale)), aspectRatio: `${a.width} / ${a.height}` };
}

function AttachmentView({ a, loc }: { a: Attachment; loc: Locale }) {
  const { t } = loc;
  const uri = safeUrl(a.uri);
  const thumb = safeImageUrl(a.thumbnails.find((r) => r.width >= 260 || r.height >= 260)?.uri ?? a.thumbnails.at(-1)?.uri);
  const name = a.title || t("message.file");
  if (a.kind === IMAGE && (thumb || uri))
    return (
      <a className="caas-attachment caas-attachment--image" href={uri ?? thumb} target="_blank" rel="noopener noreferrer" style={box(a)}>
        <img src={thumb ?? uri} alt={a.title || t("message.image")} loading="lazy" decoding="async" />
      </a>
    );
  if (a.kind === VIDEO && uri)
    return <video className="caas-attachment caas-attachment--video" src={uri} poster={thumb} controls preload="none" style={box(a)} aria-label={a.title || t("message.video")} />;
  if (a.kind === AUDIO && uri) return <audio className="caas-attachment caas-attachment--audio" src={uri} controls preload="none" aria-label={a.title || t("message.audio")} />;
  if (a.kind === LINK && uri) {
    const host = new URL(uri).host;
    return (
      <a className="caas-attachment caas-link-card" href={uri} target="_blank" rel="noopener noreferrer">
        {thumb && <img src={thumb} alt="" loading="lazy" />}
        <span className="caas-link-card-body">
          <span className="caas-link-card-title">{a.title || host}</span>
          <span className="caas-link-card-host">{host}</span>
        </span>
      </a>
    );
  }
  const href = safeUrl(a.downloadUri) ?? uri;
  const body = (
    <>
      <Icon name="file" size={22} />
      <span className="caas-file-body">
        <span className="caas-file-name">{name}</span>
        {a.sizeBytes > 0n && <span className="caas-file-size">{loc.size(a.sizeBytes)}</span>}
      </span>
    </>
  );
  return href ? (
    <a className="caas-attachment caas-file" href={href} download={a.title || true} target="_blank" rel="noopener noreferrer" title={t("message.download", { name })}>
      {body}
    </a>
  ) : (
    <span className="caas-attachment caas-file">{body}</span>
  );
}

const TICKS: Record<Delivery, { icon: "clock" | "alert" | "check" | "checks"; key: "message.sending" | "message.failed" | "message.sent" | "message.delivered" | "message.read" }> = {
  pending: { icon: "clock", key: "message.sending" },
  failed: { icon: "alert", key: "message.failed" },
  sent: { icon: "check", key: "message.sent" },
  delivered: { icon: "checks", key: "message.delivered" },
  read: { icon: "checks", key: "message.read" },
};

/**
 * One message: text (links and mentions), attachments, time, edited and delivery
 * marks, reactions, the replies footer, pending and failed states, and its actions.
 */
export const MessageItem = memo(function MessageItem(props: MessageItemProps) {
  const { item, me, senderName, senderImage, showHeader = true, showThread = true, highlighted, className } = props;
  const { onRetry, onDiscard, onToggleReaction, onOpenThread, onEdit, onDelete } = props;
  const loc = useLocale();
  const { t } = loc;
  const [picking, setPicking] = useState(false);
  const m = item.message;
  const own = m.senderId === me;
  const deleted = m.state === DELETED;
  const sent = item.status === "sent";
  const created = dateOf(m.createTime);
  const edited = !deleted && dateOf(m.editTime);
  const delivery: Delivery | undefined = own ? (item.status === "sent" ? (props.delivery ?? "sent") : item.status) : undefined;
  const tick = delivery && TICKS[delivery];
  const name = own ? t("message.you") : senderName;
  const canReact = sent && !deleted && !!onToggleReaction;
  const canReply = sent && !deleted && showThread && !!onOpenThread;
  const canEdit = sent && !deleted && own && !!onEdit;
  const canDelete = sent && !deleted && own && !!onDelete;
  const react = (emoji: string) => onToggleReaction?.(item, emoji);

  return (
    <div
      className={cx(
        "caas-message",
        own ? "caas-message--own" : "caas-message--other",
        !showHeader && "caas-message--grouped",
        deleted && "caas-message--deleted",
        item.status !== "sent" && `caas-message--${item.status}`,
        highlighted && "caas-message--highlight",
        className,
      )}
      data-key={item.key}
    >
      <div className="caas-message-gutter">
        {showHeader && !own && <Avatar id={m.senderId} name={senderName} imageUri={senderImage} size={32} />}
      </div>
      <div className="caas-message-main">
        {showHeader && !own ? <div className="caas-message-sender">{senderName}</div> : <SrOnly>{name}</SrOnly>}
        <div className="caas-message-bubble">
          {deleted ? (
            <div className="caas-message-text caas-message-text--deleted">{t("message.deleted")}</div>
          ) : (
            <>
              {m.attachments.length > 0 && (
                <div className="caas-attachments">
                  {m.attachments.map((a, i) => (
                    <AttachmentView key={i} a={a} loc={loc} />
                  ))}
                </div>
              )}
              {m.call && <CallRecord call={m.call} own={own} loc={loc} />}
              {m.text && <Text text={m.text} mentions={m.mentions} me={me} />}
            </>
          )}
          <span className="caas-message-meta">
            {edited && (
              <span className="caas-message-edited" title={loc.dateTime(edited)}>
                {t("message.edited")}
              </span>
            )}
            {created && (
              <time dateTime={created.toISOString()} title={loc.dateTime(created)}>
                {loc.time(created)}
              </time>
            )}
            {tick && (
              <span className={cx("caas-tick", `caas-tick--${delivery}`)} role="img" aria-label={t(tick.key)} title={t(tick.key)}>
                <Icon name={tick.icon} size={14} />
              </span>
            )}
          </span>
        </div>
        {item.status === "failed" && (
          <div className="caas-message-failed" role="alert">
            <span>{item.error ? t("message.failedReason", { error: item.error }) : t("message.failed")}</span>
            {onRetry && (
              <button type="button" className="caas-link-button" onClick={() => onRetry(item)}>
                {t("message.retry")}
              </button>
            )}
            {onDiscard && (
              <button type="button" className="caas-link-button" onClick={() => onDiscard(item)}>
                {t("message.discard")}
              </button>
            )}
          </div>
        )}
        {!deleted && m.reactions.length > 0 && (
          <div className="caas-reactions">
            {m.reactions.map((r) => (
              <button
                key={r.emoji}
                type="button"
                className="caas-reaction"
                aria-pressed={r.reactedByMe}
                aria-label={t("message.reaction", { emoji: r.emoji, count: r.count })}
                disabled={!canReact}
                onClick={() => react(r.emoji)}
              >
                <span aria-hidden="true">{r.emoji}</span>
                <span aria-hidden="true">{loc.number(r.count)}</span>
              </button>
            ))}
          </div>
        )}
        {showThread && m.replyCount > 0 && (
          <button type="button" className="caas-thread-footer" onClick={() => onOpenThread?.(item)} disabled={!onOpenThread}>
            <Icon name="thread" size={16} />
            <span className="caas-thread-count">{t("message.replies", { count: m.replyCount })}</span>
            {m.lastReplyTime && <span className="caas-thread-last">{t("message.lastReply", { time: loc.relative(dateOf(m.lastReplyTime)!) })}</span>}
          </button>
        )}
      </div>
      {(canReact || canReply || canEdit || canDelete) && (
        <div className={cx("caas-message-actions", picking && "caas-message-actions--open")}>
          {canReact && (
            <PopoverButton icon="smile" label={t("message.react")} open={picking} onOpenChange={setPicking} height={300}>
              {(close) => (
                <EmojiPicker
                  quick={QUICK_REACTIONS}
                  onPick={(e) => {
                    react(e);
                    close();
                  }}
                  onClose={close}
                />
              )}
            </PopoverButton>
          )}
          <PopoverButton icon="more" label={t("message.actions")} kind="menu" height={180}>
            {(close) => (
              <>
                {canReact && <MenuItem icon="smile" label={t("message.react")} onSelect={() => (close(), setPicking(true))} />}
                {canReply && <MenuItem icon="thread" label={t("message.reply")} onSelect={() => (close(), onOpenThread!(item))} />}
                {canEdit && <MenuItem icon="edit" label={t("message.edit")} onSelect={() => (close(), onEdit!(item))} />}
                {canDelete && <MenuItem icon="trash" label={t("message.delete")} danger onSelect={() => (close(), onDelete!(item))} />}
              </>
            )}
          </PopoverButton>
        </div>
      )}
    </div>
  );
});
