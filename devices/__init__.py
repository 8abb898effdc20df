"""Hall devices as the server sees them: kiosks, call terminals, screens, card readers, cameras."""
