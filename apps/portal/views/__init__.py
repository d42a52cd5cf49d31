"""Portal views, thin: a form, a service, a redirect with a message (or the page again with the
service's refusal in place). One module per area: home, campaigns, registry, inventory."""
