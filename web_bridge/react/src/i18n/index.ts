/**
 * Localization of the kit: a catalog of strings per locale, `{name}` interpolation,
 * plural forms by Intl.PluralRules, and dates, times and sizes by Intl formatters.
 *
 *   <LocaleProvider locale="ar">…</LocaleProvider>           built-in Arabic, right to left
 *   <LocaleProvider locale="fr" messages={fr}>…</LocaleProvider>  any other locale: a
 *     (partial) catalog; missing keys fall back to the built-in catalog, then English.
 */
import { createContext, createElement, useContext, useMemo, type ReactNode } from "react";

import { directionOf } from "./direction.js";
import { en, type Catalog, type Entry, type MessageKey, type Plural } from "./en.js";

export { directionOf, en };
export type { Catalog, Entry, MessageKey, Plural };

/**
 * The catalogs the kit ships, by language: English here; the kit's entry point adds
 * Arabic (kit/index.ts), so that a bundle importing components one by one (the widget)
 * carries only the catalogs it loads itself.
 */
export const catalogs: Record<string, Catalog> = { en };


export type Params = Record<string, string | number | bigint>;
export type Translate = (key: MessageKey, params?: Params) => string;

export interface Locale {
  locale: string;
  dir: "ltr" | "rtl";
  t: Translate;
  /** "14:05" */
  time(date: Date): string;
  /** "Tuesday, 4 March 2025 at 14:05" — for tooltips. */
  dateTime(date: Date): string;
  /** A day separator: "Today", "Yesterday", "Monday", "4 March 2025". */
  day(date: Date, now?: Date): string;
  /** The inbox's compact time: the time today, the weekday this week, else the date. */
  short(date: Date, now?: Date): string;
  /** "5 minutes ago", "yesterday". */
  relative(date: Date, now?: Date): string;
  /** "1.2 MB" */
  size(bytes: number | bigint): string;
  number(n: number | bigint): string;
}

const DAY = 86_400_000;
const startOfDay = (d: Date) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
/** Whole calendar days from `date` to `now` (0 today, 1 yesterday). */
export const daysAgo = (date: Date, now: Date) => Math.round((startOfDay(now) - startOfDay(date)) / DAY);

export function createLocale(locale: string, overrides?: Partial<Catalog>): Locale {
  const lang = locale.split(/[-_]/)[0];
  const catalog: Partial<Catalog> = { ...en, ...(catalogs[locale] ?? catalogs[lang]), ...overrides };
  const plural = new Intl.PluralRules(locale);
  const nf = new Intl.NumberFormat(locale);
  const dtf = (o: Intl.DateTimeFormatOptions) => new Intl.DateTimeFormat(locale, o);
  const timeF = dtf({ hour: "numeric", minute: "2-digit" });
  const fullF = dtf({ dateStyle: "full", timeStyle: "short" });
  const weekdayF = dtf({ weekday: "long" });
  const weekdayShortF = dtf({ weekday: "short" });
  const dateF = dtf({ day: "numeric", month: "long", year: "numeric" });
  const shortDateF = dtf({ day: "numeric", month: "short" });
  const shortYearF = dtf({ dateStyle: "short" });
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });

  const t: Translate = (key, params) => {
    let entry: Entry = catalog[key] ?? en[key] ?? key;
    if (typeof entry !== "string") {
      const count = Number(params?.count ?? 0);
      const form = plural.select(count) as keyof Plural;
      // An explicit zero form is used for 0 even where the language has no zero category.
      entry = (count === 0 && entry.zero) || entry[form] || entry.other;
    }
    if (!params) return entry;
    return entry.replace(/\{(\w+)\}/g, (match, name: string) => {
      const value = params[name];
      if (value === undefined) return match;
      return typeof value === "string" ? value : nf.format(value);
    });
  };

  const size = (bytes: number | bigint) => {
    let n = Number(bytes);
    const units = ["byte", "kilobyte", "megabyte", "gigabyte", "terabyte"];
    let u = 0;
    while (n >= 1000 && u < units.length - 1) {
      n /= 1000;
      u++;
    }
    return new Intl.NumberFormat(locale, {
      style: "unit",
      unit: units[u],
      unitDisplay: u ? "short" : "long",
      maximumFractionDigits: n < 10 && u ? 1 : 0,
    }).format(n);
  };

  return {
    locale,
    dir: directionOf(locale),
    t,
    time: (d) => timeF.format(d),
    dateTime: (d) => fullF.format(d),
    day(d, now = new Date()) {
      const ago = daysAgo(d, now);
      if (ago === 0) return t("day.today");
      if (ago === 1) return t("day.yesterday");
      if (ago > 1 && ago < 7) return weekdayF.format(d);
      return dateF.format(d);
    },
    short(d, now = new Date()) {
      const ago = daysAgo(d, now);
      if (ago <= 0) return timeF.format(d);
      if (ago === 1) return t("day.yesterday");
      if (ago < 7) return weekdayShortF.format(d);
      return d.getFullYear() === now.getFullYear() ? shortDateF.format(d) : shortYearF.format(d);
    },
    relative(d, now = new Date()) {
      const s = (d.getTime() - now.getTime()) / 1000;
      const abs = Math.abs(s);
      if (abs < 45) return rtf.format(0, "second");
      if (abs < 2700) return rtf.format(Math.round(s / 60), "minute");
      if (abs < 79200) return rtf.format(Math.round(s / 3600), "hour");
      const days = -daysAgo(d, now);
      if (Math.abs(days) < 7) return rtf.format(days, "day");
      if (Math.abs(days) < 30) return rtf.format(Math.round(days / 7), "week");
      return dateF.format(d);
    },
    size,
    number: (n) => nf.format(n),
  };
}

let fallback: Locale | undefined;
const LocaleContext = createContext<Locale | null>(null);

export interface LocaleProviderProps {
  /** A BCP 47 tag: "en", "ar", "fr-CA"… */
  locale: string;
  /** Strings replacing the catalog's (a whole catalog for a locale the kit does not ship). */
  messages?: Partial<Catalog>;
  children?: ReactNode;
}

/** Sets the locale of the kit's components below it. */
export function LocaleProvider({ locale, messages, children }: LocaleProviderProps) {
  const value = useMemo(() => createLocale(locale, messages), [locale, messages]);
  return createElement(LocaleContext.Provider, { value }, children);
}

/** The nearest LocaleProvider's locale and formatters (English without one). */
export function useLocale(): Locale {
  return useContext(LocaleContext) ?? (fallback ??= createLocale("en"));
}

/** `t(key, params)`: the nearest locale's string for `key`. */
export function useText(): Translate {
  return useLocale().t;
}
