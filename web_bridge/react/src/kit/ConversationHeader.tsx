import type { ReactNode } from "react";

import { useLocale } from "../i18n/index.js";
import { Avatar, presenceName, type PresenceValue } from "./Avatar.js";
import { cx, Icon } from "./util.js";

export interface ConversationHeaderProps {
  id: string;
  title: string;
  imageUri?: string;
  /** For a direct conversation: the other member's presence. */
  presence?: PresenceValue;
  /** When offline: shows "Last seen …". */
  lastSeen?: Date;
  /** For a group: shows "{count} members" (when no presence). */
  memberCount?: number;
  /** Shows a back button (narrow layouts). */
  onBack?(): void;
  /** Extra buttons at the end. */
  actions?: ReactNode;
  className?: string;
}

/** The bar above a conversation: back, avatar, title, presence or member count, actions. */
export function ConversationHeader({ id, title, imageUri, presence, lastSeen, memberCount, onBack, actions, className }: ConversationHeaderProps) {
  const loc = useLocale();
  const { t } = loc;
  const status = presenceName(presence);
  const subtitle =
    status === "offline" && lastSeen ? t("presence.lastSeen", { time: loc.relative(lastSeen) })
    : status ? t(`presence.${status}`)
    : memberCount ? t("header.members", { count: memberCount })
    : "";
  return (
    <header className={cx("caas-pane-header", className)}>
      {onBack && (
        <button type="button" className="caas-icon-button caas-back" aria-label={t("header.back")} title={t("header.back")} onClick={onBack}>
          <Icon name="back" flip />
        </button>
      )}
      <Avatar id={id} name={title} imageUri={imageUri} size={36} presence={presence} />
      <div className="caas-pane-heading">
        <h2 className="caas-pane-title" dir="auto">
          {title}
        </h2>
        {subtitle && <p className="caas-pane-subtitle">{subtitle}</p>}
      </div>
      {actions}
    </header>
  );
}
