"""Image downloader: fetch (polite, safe), process (decode, resize), write shards."""
