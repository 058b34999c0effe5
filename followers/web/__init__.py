"""The client pages of followers: the copy dialog with its preview
(``copy_dialog``) and my copies, live (``copies``). Each module holds its
views and its ``urlpatterns``; see copytrading/web for what the pages share."""
