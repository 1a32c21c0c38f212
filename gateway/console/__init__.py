"""The console: the web page for the people who review and ship prompts (`/console`)."""
