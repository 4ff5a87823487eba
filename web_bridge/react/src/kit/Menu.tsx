/** A button opening a popover (menu or emoji picker), placed where it fits. */
import { useId, useLayoutEffect, useRef, useState, type KeyboardEvent, type ReactNode } from "react";

import { cx, Icon, useDismiss, type IconName } from "./util.js";

/** The rectangle that clips `el`: its nearest ancestor not overflowing visibly, or the viewport. */
function clipOf(el: HTMLElement): { top: number; bottom: number; left: number; right: number } {
  for (let box = el.parentElement; box; box = box.parentElement) {
    const style = getComputedStyle(box);
    if (style.overflowX !== "visible" || style.overflowY !== "visible") return box.getBoundingClientRect();
  }
  return { top: 0, bottom: innerHeight, left: 0, right: innerWidth };
}

export interface PopoverButtonProps {
  icon: IconName;
  label: string;
  /** "menu" for a menu of menuitem buttons (arrow keys move), "dialog" otherwise. */
  kind?: "menu" | "dialog";
  className?: string;
  /** The popover's content; `close` closes it and puts the focus back on the button. */
  children(close: () => void): ReactNode;
  /** Opened from outside (e.g. a menu item opening the emoji picker). */
  open?: boolean;
  onOpenChange?(open: boolean): void;
  /** Roughly how tall the popover is, to choose above or below. */
  height?: number;
}

export function PopoverButton({ icon, label, kind = "dialog", className, children, open: controlled, onOpenChange, height = 260 }: PopoverButtonProps) {
  const [own, setOwn] = useState(false);
  const open = controlled ?? own;
  const [below, setBelow] = useState(false);
  const wrap = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const id = useId();
  const set = (v: boolean) => {
    setOwn(v);
    onOpenChange?.(v);
  };
  const close = () => {
    set(false);
    button.current?.focus();
  };
  useDismiss(open, wrap, () => set(false));

  // Above the button if it fits, else below; shifted sideways to stay in view.
  useLayoutEffect(() => {
    const el = wrap.current;
    if (!open || !el) return;
    const clip = clipOf(el);
    const r = el.getBoundingClientRect();
    const above = r.top - clip.top;
    const underneath = clip.bottom - r.bottom;
    const goBelow = above < height && underneath > above;
    setBelow(goBelow);
    const pop = el.querySelector<HTMLElement>(".caas-popover");
    if (pop) {
      // Where neither side has room (a short pane), it takes the larger and scrolls.
      const room = Math.floor((goBelow ? underneath : above) - 8);
      pop.style.maxHeight = room < height ? `${Math.max(120, room)}px` : "";
      pop.style.overflowY = room < height ? "auto" : "";
      pop.style.transform = "";
      const p = pop.getBoundingClientRect();
      const dx = p.right > clip.right - 4 ? clip.right - 4 - p.right : p.left < clip.left + 4 ? clip.left + 4 - p.left : 0;
      if (dx) pop.style.transform = `translateX(${Math.round(dx)}px)`;
    }
    if (kind === "menu") el.querySelector<HTMLElement>("[role=menuitem]")?.focus();
  }, [open, kind, height]);

  const keys = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
      return;
    }
    if (kind !== "menu") return;
    const items = [...e.currentTarget.querySelectorAll<HTMLElement>("[role=menuitem]")];
    const i = items.indexOf(document.activeElement as HTMLElement);
    const to =
      e.key === "ArrowDown" ? (i + 1) % items.length
      : e.key === "ArrowUp" ? (i - 1 + items.length) % items.length
      : e.key === "Home" ? 0
      : e.key === "End" ? items.length - 1
      : -1;
    if (to >= 0) {
      e.preventDefault();
      items[to]?.focus();
    } else if (e.key === "Tab") set(false);
  };

  return (
    <div ref={wrap} className={cx("caas-popover-anchor", className)}>
      <button
        ref={button}
        type="button"
        className="caas-icon-button"
        aria-label={label}
        title={label}
        aria-haspopup={kind === "menu" ? "menu" : "dialog"}
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        onClick={() => set(!open)}
      >
        <Icon name={icon} />
      </button>
      {open && (
        <div id={id} className={cx("caas-popover", below && "caas-popover--below")} role={kind === "menu" ? "menu" : undefined} aria-label={kind === "menu" ? label : undefined} onKeyDown={keys}>
          {children(close)}
        </div>
      )}
    </div>
  );
}

export interface MenuItemProps {
  icon: IconName;
  label: string;
  onSelect(): void;
  danger?: boolean;
}

export const MenuItem = ({ icon, label, onSelect, danger }: MenuItemProps) => (
  <button type="button" role="menuitem" tabIndex={-1} className={cx("caas-menu-item", danger && "caas-menu-item--danger")} onClick={onSelect}>
    <Icon name={icon} />
    {label}
  </button>
);
