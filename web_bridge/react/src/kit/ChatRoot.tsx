import type { CSSProperties, ReactNode } from "react";

import { LocaleProvider, useLocale, type Catalog } from "../i18n/index.js";
import { cx } from "./util.js";

export type Theme = "light" | "dark" | "auto";

export interface ChatRootProps {
  /** "light" (default), "dark", or "auto" (follows the system's preference). */
  theme?: Theme;
  /** A BCP 47 tag (default "en"); sets `lang` and `dir`. */
  locale?: string;
  /** Strings replacing the catalog's. */
  messages?: Partial<Catalog>;
  className?: string;
  /** E.g. `{"--caas-accent": "#0a7"}`. */
  style?: CSSProperties;
  children?: ReactNode;
}

function Root({ theme, className, style, children }: ChatRootProps) {
  const { locale, dir } = useLocale();
  return (
    <div className={cx("caas-root", className)} data-caas-theme={theme} lang={locale} dir={dir} style={style}>
      {children}
    </div>
  );
}

/** The kit's container: theme (CSS variables), locale, text direction. */
export function ChatRoot({ locale = "en", messages, theme = "light", ...rest }: ChatRootProps) {
  return (
    <LocaleProvider locale={locale} messages={messages}>
      <Root theme={theme} {...rest} />
    </LocaleProvider>
  );
}
