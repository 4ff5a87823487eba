// Copies the kit's stylesheet next to the compiled modules (`@caas/react/styles.css`).
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(root, "dist"), { recursive: true });
copyFileSync(join(root, "src/styles.css"), join(root, "dist/styles.css"));
