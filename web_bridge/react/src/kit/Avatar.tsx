import { useState } from "react";
import type { Presence_Status } from "@caas/sdk";

import { useText } from "../i18n/index.js";
import { cx, hashOf, initials } from "./util.js";

export type PresenceValue = Presence_Status | "online" | "away" | "offline";

/** "online" | "away" | "offline" | undefined (unknown) from a status or its name. */
export function presenceName(status: PresenceValue | undefined): "online" | "away" | "offline" | undefined {
  if (typeof status === "string") return status;
  return status === 2 ? "online" : status === 3 ? "away" : status === 1 ? "offline" : undefined;
}

export interface PresenceBadgeProps {
  status: PresenceValue;
  className?: string;
}

/** A coloured dot (online, away, offline) with an accessible label. */
export function PresenceBadge({ status, className }: PresenceBadgeProps) {
  const t = useText();
  const name = presenceName(status);
  if (!name) return null;
  return <span className={cx("caas-presence", `caas-presence--${name}`, className)} role="img" aria-label={t(`presence.${name}`)} />;
}

export interface AvatarProps {
  /** Whose: chooses the colour of the initials. */
  id: string;
  /** For the initials and (when `label`) the accessible name. */
  name: string;
  imageUri?: string;
  /** Pixels (default 36). */
  size?: number;
  presence?: PresenceValue;
  /** Gives the avatar an accessible name (the name); decorative by default. */
  label?: boolean;
  className?: string;
}

/** A user's or conversation's picture, or their initials on a colour chosen from the id. */
export function Avatar({ id, name, imageUri, size = 36, presence, label, className }: AvatarProps) {
  const [failed, setFailed] = useState<string>();
  const image = imageUri && failed !== imageUri ? imageUri : undefined;
  return (
    <span
      className={cx("caas-avatar", `caas-avatar--c${hashOf(id || name, 8)}`, className)}
      style={{ width: size, height: size, fontSize: Math.round(size * 0.4) }}
      role={label ? "img" : undefined}
      aria-label={label ? name : undefined}
      aria-hidden={label ? undefined : true}
    >
      {image ? (
        <img src={image} alt="" width={size} height={size} loading="lazy" onError={() => setFailed(image)} />
      ) : (
        initials(name || id)
      )}
      {presence !== undefined && <PresenceBadge status={presence} className="caas-avatar-presence" />}
    </span>
  );
}
