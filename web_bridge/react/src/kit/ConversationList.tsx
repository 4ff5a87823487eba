import { useRef, useState, type KeyboardEvent, type ReactNode } from "react";
import type { Conversation } from "@caas/sdk";

import { useLocale } from "../i18n/index.js";
import { Avatar, presenceName, type PresenceValue } from "./Avatar.js";
import { UnreadBadge } from "./UnreadBadge.js";
import { cx, dateOf, Icon, SrOnly, type UserResolver } from "./util.js";

export interface ConversationListProps {
  /** In the order shown (the inbox order: pinned first, then by latest activity). */
  conversations: readonly Conversation[];
  /** The selected conversation's name. */
  selected?: string;
  onSelect(name: string): void;
  /** The signed-in user's id: "You: …" previews. */
  me?: string;
  /** A conversation's title (e.g. the other member's name for a direct one); default its title. */
  titleOf?(conversation: Conversation): string;
  /** Its picture; default `imageUri`. */
  imageOf?(conversation: Conversation): string | undefined;
  /** The other member's presence, for a direct conversation. */
  presenceOf?(conversation: Conversation): PresenceValue | undefined;
  /** Names of the senders of previews. */
  userOf?: UserResolver;
  /** Conversation name → names of people typing there (shown instead of the preview). */
  typing?: Readonly<Record<string, readonly string[]>>;
  loading?: boolean;
  empty?: ReactNode;
  /** The accessible name (default "Conversations"). */
  label?: string;
  className?: string;
}

const leaf = (name: string) => name.slice(name.lastIndexOf("/") + 1);

/** The inbox: a listbox of conversations; arrow keys move, Enter or Space opens. */
export function ConversationList(props: ConversationListProps) {
  const { conversations, selected, onSelect, me, titleOf, imageOf, presenceOf, userOf, typing } = props;
  const loc = useLocale();
  const { t } = loc;
  const list = useRef<HTMLUListElement>(null);
  const selectedIndex = conversations.findIndex((c) => c.name === selected);
  const [focus, setFocus] = useState(-1);
  const active = focus >= 0 && focus < conversations.length ? focus : Math.max(0, selectedIndex);
  const now = new Date();

  const keys = (e: KeyboardEvent<HTMLUListElement>) => {
    const n = conversations.length;
    const to =
      e.key === "ArrowDown" ? Math.min(n - 1, active + 1)
      : e.key === "ArrowUp" ? Math.max(0, active - 1)
      : e.key === "Home" ? 0
      : e.key === "End" ? n - 1
      : -1;
    if (to >= 0) {
      e.preventDefault();
      setFocus(to);
      (list.current?.children[to] as HTMLElement | undefined)?.focus();
    } else if ((e.key === "Enter" || e.key === " ") && conversations[active]) {
      e.preventDefault();
      onSelect(conversations[active].name);
    }
  };

  if (props.loading && !conversations.length)
    return (
      <div className={cx("caas-conversations", props.className)} aria-busy="true">
        <SrOnly>{t("list.loading")}</SrOnly>
        {[0, 1, 2, 3, 4].map((i) => (
          <div key={i} className="caas-conv caas-conv--skeleton" aria-hidden="true">
            <span className="caas-skeleton caas-skeleton--circle" />
            <span className="caas-conv-body">
              <span className="caas-skeleton" style={{ inlineSize: `${60 - i * 7}%` }} />
              <span className="caas-skeleton" style={{ inlineSize: `${85 - i * 5}%` }} />
            </span>
          </div>
        ))}
      </div>
    );

  if (!conversations.length)
    return <div className={cx("caas-conversations", "caas-conversations--empty", props.className)}>{props.empty ?? <p>{t("list.empty")}</p>}</div>;

  return (
    <ul
      ref={list}
      className={cx("caas-conversations", props.className)}
      role="listbox"
      aria-label={props.label ?? t("list.label")}
      onKeyDown={keys}
    >
      {conversations.map((c, i) => {
        const title = titleOf?.(c) || c.title || leaf(c.name);
        const member = c.membership;
        const unread = member ? Number(member.unreadCount) : 0;
        const mentions = member ? Number(member.unreadMentionCount) : 0;
        const last = c.lastMessage;
        const when = dateOf(c.lastActivityTime ?? last?.createTime);
        const presence = presenceName(presenceOf?.(c));
        const typers = typing?.[c.name];
        let preview: string;
        if (typers?.length)
          preview = typers.length === 1 ? t("typing.one", { name: typers[0] }) : typers.length === 2 ? t("typing.two", { name: typers[0], other: typers[1] }) : t("typing.many");
        else if (!last) preview = t("preview.none");
        else if (last.deleted) preview = t("preview.deleted");
        else {
          const text = last.text || t("preview.attachment");
          preview =
            last.senderId === me ? t("preview.you", { text })
            : c.kind === 1 ? text
            : t("preview.sender", { name: userOf?.(last.senderId)?.name ?? last.senderId, text });
        }
        return (
          <li
            key={c.name}
            role="option"
            aria-selected={c.name === selected}
            tabIndex={i === active ? 0 : -1}
            className={cx(
              "caas-conv",
              c.name === selected && "caas-conv--selected",
              unread > 0 && "caas-conv--unread",
              member?.muted && "caas-conv--muted",
              !!typers?.length && "caas-conv--typing",
            )}
            onClick={() => {
              setFocus(i);
              onSelect(c.name);
            }}
            onFocus={() => setFocus(i)}
          >
            <Avatar id={c.name} name={title} imageUri={imageOf ? imageOf(c) : c.imageUri} size={44} presence={presence} />
            <span className="caas-conv-body">
              <span className="caas-conv-top">
                <span className="caas-conv-title" dir="auto">
                  {title}
                </span>
                {presence && <SrOnly>{`, ${t(`presence.${presence}`)}`}</SrOnly>}
                {member?.pinned && (
                  <span className="caas-conv-flag" title={t("list.pinned")}>
                    <Icon name="pin" size={14} />
                    <SrOnly>{`, ${t("list.pinned")}`}</SrOnly>
                  </span>
                )}
                {member?.muted && (
                  <span className="caas-conv-flag" title={t("list.muted")}>
                    <Icon name="muted" size={14} />
                    <SrOnly>{`, ${t("list.muted")}`}</SrOnly>
                  </span>
                )}
                {when && (
                  <time className="caas-conv-time" dateTime={when.toISOString()} title={loc.dateTime(when)}>
                    {loc.short(when, now)}
                  </time>
                )}
              </span>
              <span className="caas-conv-bottom">
                <span className="caas-conv-preview" dir="auto">
                  <SrOnly>, </SrOnly>
                  {preview}
                </span>
                {mentions > 0 && <UnreadBadge count={mentions} mention />}
                <UnreadBadge count={unread} className={member?.muted ? "caas-badge--muted" : undefined} />
              </span>
            </span>
          </li>
        );
      })}
    </ul>
  );
}
