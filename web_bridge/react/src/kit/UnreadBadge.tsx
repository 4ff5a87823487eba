import { useLocale } from "../i18n/index.js";
import { cx, SrOnly } from "./util.js";

export interface UnreadBadgeProps {
  count: number | bigint;
  /** Counts mentions: shows "@" and says "mentions". */
  mention?: boolean;
  /** Shows "99+" above (default 99). */
  max?: number;
  className?: string;
}

/** A count of unread messages (or mentions), with a full sentence for screen readers. */
export function UnreadBadge({ count, mention, max = 99, className }: UnreadBadgeProps) {
  const { t, number } = useLocale();
  const n = Number(count);
  if (n <= 0) return null;
  return (
    <span className={cx("caas-badge", mention && "caas-badge--mention", className)}>
      <span aria-hidden="true">{mention ? "@" : n > max ? `${number(max)}+` : number(n)}</span>
      <SrOnly>{t(mention ? "list.mentions" : "list.unread", { count: n })}</SrOnly>
    </span>
  );
}
