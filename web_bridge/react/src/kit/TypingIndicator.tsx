import { useText } from "../i18n/index.js";
import { cx } from "./util.js";

export interface TypingIndicatorProps {
  /** Display names of who is typing (not the user themself). */
  names: readonly string[];
  className?: string;
}

/** "Alice is typing…", "Alice and Bob are typing…", "Several people are typing…". */
export function TypingIndicator({ names, className }: TypingIndicatorProps) {
  const t = useText();
  const text =
    names.length === 0
      ? ""
      : names.length === 1
        ? t("typing.one", { name: names[0] })
        : names.length === 2
          ? t("typing.two", { name: names[0], other: names[1] })
          : t("typing.many");
  return (
    <div className={cx("caas-typing", !text && "caas-typing--idle", className)} role="status">
      {text && (
        <>
          <span className="caas-typing-dots" aria-hidden="true">
            <span />
            <span />
            <span />
          </span>
          <span className="caas-typing-text">{text}</span>
        </>
      )}
    </div>
  );
}
