// The story modules, collected by build.mjs (`virtual:stories`).
declare module "virtual:stories" {
  export interface StoryModule {
    default: { title: string; description?: string };
    [name: string]: unknown;
  }
  const modules: Record<string, { module: StoryModule; order: string[] }>;
  export default modules;
}

declare module "*.css";
