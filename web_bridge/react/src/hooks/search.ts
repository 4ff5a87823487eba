/** Search hooks: messages as the user types, and users for mention autocomplete. */
import { useCallback, useEffect, useState } from "react";

import type { MessageHit, UserHit } from "@caas/sdk";

import { useChatClient } from "./context.js";

export interface SearchOptions {
  /** Only these conversations. */
  conversations?: string[];
  /** Wait this long after the last change before searching (default 250 ms). */
  debounceMs?: number;
}

/** Message search as the user types (debounced; an older answer never replaces a newer). */
export function useSearch(query: string, options: SearchOptions = {}) {
  const client = useChatClient();
  const [hits, setHits] = useState<MessageHit[]>([]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const scope = (options.conversations ?? []).join("\n");
  useEffect(() => {
    const text = query.trim();
    if (!text) {
      setHits([]);
      setLoading(false);
      return;
    }
    const abort = new AbortController();
    setLoading(true);
    const timer = setTimeout(() => {
      client.client.search
        .searchMessages({ parent: client.app, query: text, conversations: scope ? scope.split("\n") : [], pageSize: 20 },
          { signal: abort.signal })
        .then((response) => {
          setHits(response.hits);
          setError(undefined);
          setLoading(false);
        })
        .catch((reason: unknown) => {
          if (abort.signal.aborted) return;
          setError(reason instanceof Error ? reason : new Error(String(reason)));
          setLoading(false);
        });
    }, options.debounceMs ?? 250);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [client, query, scope, options.debounceMs]);
  return { hits, loading, error };
}

/** Users whose name or id begins with `prefix` (mention autocomplete). */
export function useUserSuggestions() {
  const client = useChatClient();
  return useCallback(async (prefix: string, conversation?: string): Promise<UserHit[]> => {
    if (!prefix) return [];
    const response = await client.client.search.searchUsers({
      parent: client.app, prefix, conversation: conversation ?? "", pageSize: 8,
    });
    return response.hits;
  }, [client]);
}

