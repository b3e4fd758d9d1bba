"""Code hosts (GitHub, GitLab): verified pull-request webhooks in, REST calls out."""
