/** The gallery: every story of the kit, a sidebar, hash routes, theme and locale toggles. */
import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import modules from "virtual:stories";

import "../src/styles.css";
import "./gallery.css";
import { ChatRoot, type Theme } from "../src/kit/index.js";
import type { Story } from "./story.js";

interface Entry {
  id: string;
  title: string;
  name: string;
  story: Story;
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
const words = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/([A-Z])([A-Z][a-z])/g, "$1 $2");

const groups = Object.values(modules)
  .map(({ module: m, order }) => ({
    title: m.default.title,
    stories: order
      .filter((name) => typeof m[name] === "function")
      .map((name): Entry => ({ id: `${slug(m.default.title)}--${slug(words(name))}`, title: m.default.title, name: words(name), story: m[name] as Story })),
  }))
  .sort((a, b) => a.title.localeCompare(b.title));
const all = groups.flatMap((g) => g.stories);

function parse(): { id: string; theme: Theme; locale: string } {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const q = new URLSearchParams(query);
  return { id: path || all[0]?.id, theme: (q.get("theme") as Theme) || "light", locale: q.get("locale") || "en" };
}

const href = (id: string, theme: string, locale: string) => {
  const q = new URLSearchParams();
  if (theme !== "light") q.set("theme", theme);
  if (locale !== "en") q.set("locale", locale);
  const s = q.toString();
  return `#/${id}${s ? `?${s}` : ""}`;
};

function Gallery() {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  const entry = all.find((e) => e.id === route.id) ?? all[0];
  const p = entry?.story.parameters ?? {};
  const theme = p.theme ?? route.theme;
  const locale = p.locale ?? route.locale;
  useEffect(() => {
    document.title = entry ? `${entry.title} · ${entry.name} — CAAS UI kit` : "CAAS UI kit";
    document.documentElement.dataset.theme = route.theme;
  }, [entry, route.theme]);
  const Story = entry?.story;

  return (
    <div className="g-app">
      <nav className="g-sidebar" aria-label="Stories">
        <p className="g-brand">CAAS UI kit</p>
        {groups.map((g) => (
          <div key={g.title} role="group" aria-labelledby={`g-${slug(g.title)}`}>
            <h2 id={`g-${slug(g.title)}`}>{g.title}</h2>
            <ul>
              {g.stories.map((s) => (
                <li key={s.id}>
                  <a href={href(s.id, route.theme, route.locale)} aria-current={s.id === entry?.id ? "page" : undefined}>
                    {s.name}
                  </a>
                </li>
              ))}
            </ul>
          </div>
        ))}
      </nav>
      <div className="g-main">
        <header className="g-toolbar">
          <h1>
            {entry?.title} <span>/ {entry?.name}</span>
          </h1>
          <label>
            Theme{" "}
            <select value={route.theme} onChange={(e) => (location.hash = href(entry.id, e.target.value, route.locale))}>
              <option value="light">Light</option>
              <option value="dark">Dark</option>
              <option value="auto">Auto</option>
            </select>
          </label>
          <label>
            Locale{" "}
            <select value={route.locale} onChange={(e) => (location.hash = href(entry.id, route.theme, e.target.value))}>
              <option value="en">English</option>
              <option value="ar">العربية (RTL)</option>
            </select>
          </label>
        </header>
        <main className={p.fill ? "g-stage g-stage--fill" : "g-stage"}>
          {p.description && <p className="g-description">{p.description}</p>}
          <ChatRoot
            key={entry?.id}
            theme={theme}
            locale={locale}
            className="g-frame"
            style={{ width: p.width, height: p.height, maxWidth: "100%" }}
          >
            {Story && <Story />}
          </ChatRoot>
        </main>
      </div>
    </div>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <Gallery />
  </StrictMode>,
);
