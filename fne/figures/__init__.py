"""Every figure fne draws: run reports, cell drawings and the score study."""
