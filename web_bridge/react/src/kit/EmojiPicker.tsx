import { useEffect, useRef, useState, type KeyboardEvent } from "react";

import { useText } from "../i18n/index.js";
import { searchEmoji } from "./emoji.js";
import { cx } from "./util.js";

export interface EmojiPickerProps {
  onPick(emoji: string): void;
  /** Escape, or after a pick (the opener puts the focus back). */
  onClose(): void;
  /** Emoji shown first, in their own row (e.g. quick reactions). */
  quick?: readonly string[];
  className?: string;
}

const COLUMNS = 8;

/**
 * A small emoji picker: a search field and a grid of buttons; arrow keys move in the
 * grid, Enter picks, Escape closes. Emoji buttons are named by the characters, which
 * screen readers speak in the user's language.
 */
export function EmojiPicker({ onPick, onClose, quick, className }: EmojiPickerProps) {
  const t = useText();
  const [query, setQuery] = useState("");
  const grid = useRef<HTMLDivElement>(null);
  const search = useRef<HTMLInputElement>(null);
  const list = searchEmoji(query);
  const emoji = quick && !query ? [...quick, ...list.map((e) => e.emoji).filter((e) => !quick.includes(e))] : list.map((e) => e.emoji);

  useEffect(() => search.current?.focus({ preventScroll: true }), []);

  const move = (e: KeyboardEvent<HTMLDivElement>) => {
    const buttons = [...(grid.current?.querySelectorAll("button") ?? [])];
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const rtl = getComputedStyle(e.currentTarget).direction === "rtl";
    const step: Record<string, number> = {
      ArrowRight: rtl ? -1 : 1,
      ArrowLeft: rtl ? 1 : -1,
      ArrowDown: COLUMNS,
      ArrowUp: -COLUMNS,
    };
    if (e.target === search.current && (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "ArrowUp")) return;
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      onClose();
    } else if (e.key in step) {
      e.preventDefault();
      if (i < 0) buttons[0]?.focus();
      else if (e.key === "ArrowUp" && i < COLUMNS) search.current?.focus();
      else buttons[Math.max(0, Math.min(buttons.length - 1, i + step[e.key]))]?.focus();
    } else if (e.key === "Enter" && i < 0 && emoji[0]) {
      e.preventDefault();
      onPick(emoji[0]);
    }
  };

  return (
    <div className={cx("caas-emoji-picker", className)} role="dialog" aria-label={t("emoji.label")} onKeyDown={move}>
      <input
        ref={search}
        className="caas-emoji-search"
        type="search"
        value={query}
        placeholder={t("emoji.search")}
        aria-label={t("emoji.search")}
        onChange={(e) => setQuery(e.target.value)}
      />
      <div ref={grid} className="caas-emoji-grid">
        {emoji.map((e, i) => (
          <button key={e} type="button" className="caas-emoji-button" tabIndex={i ? -1 : 0} onClick={() => onPick(e)}>
            {e}
          </button>
        ))}
        {!emoji.length && <p className="caas-emoji-none">{t("emoji.none")}</p>}
      </div>
    </div>
  );
}
