/**
 * CSF-like stories: a file exports `default { title }` and named stories, each a
 * component rendering one state. `story(fn, { fill, width, theme, locale })` sets how
 * the gallery frames it.
 */
import type { ComponentType } from "react";

export interface StoryParameters {
  /** The story fills the viewport's height (a chat screen). */
  fill?: boolean;
  /** The frame's width in pixels (e.g. 360 for a phone). */
  width?: number;
  height?: number;
  /** Forced theme or locale, whatever the toolbar says. */
  theme?: "light" | "dark" | "auto";
  locale?: string;
  description?: string;
}

export type Story = ComponentType & { parameters?: StoryParameters };

export function story(component: ComponentType, parameters: StoryParameters = {}): Story {
  return Object.assign(component, { parameters });
}
