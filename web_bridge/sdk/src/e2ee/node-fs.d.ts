// The little of node:fs/promises that fileKeyStore uses: the SDK builds without
// @types/node (its other modules run in browsers too).
declare module "node:fs/promises" {
  interface FileHandle {
    writeFile(data: string): Promise<void>;
    sync(): Promise<void>;
    close(): Promise<void>;
  }
  export function open(path: string, flags: string, mode?: number): Promise<FileHandle>;
  export function readFile(path: string, encoding: "utf8"): Promise<string>;
  export function rename(from: string, to: string): Promise<void>;
  export function unlink(path: string): Promise<void>;
}
