from followers.web import copies, copy_dialog

urlpatterns = [*copy_dialog.urlpatterns, *copies.urlpatterns]
